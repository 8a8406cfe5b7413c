use serde_json::json;
use socklab::events::*;
use std::time::Duration;

#[test]
fn smoke() {
    let server = RunningServer::start(
        ServerConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        |io| {
            io.on_connection("/", |io, sid| {
                io.on(sid, "chat message", |io, ev| {
                    let _ = io.broadcast("/").emit("chat message", ev.args.clone());
                });
                io.on(sid, "echo", |io, ev| io.ack(ev, ev.args.clone()));
            });
        },
    )
    .unwrap();
    let addr = server.addr;
    let mut opts = ClientOptions::new(addr);
    opts.reconnection = false;
    let mut c = Client::connect(opts).unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    c.io().on("chat message", move |_, ev| {
        g.borrow_mut().push(ev.args.clone())
    });
    c.io().emit("chat message", vec![json!("hi")]).unwrap();
    let g = got.clone();
    assert!(c
        .run_until(Duration::from_secs(5), move |_| !g.borrow().is_empty())
        .unwrap());
    let acked = std::rc::Rc::new(std::cell::RefCell::new(None));
    let a = acked.clone();
    c.io()
        .emit_with_ack(
            "echo",
            vec![json!(1), json!("x")],
            vec![vec![1, 2, 3]],
            Duration::from_secs(2),
            move |_, r| *a.borrow_mut() = Some(r),
        )
        .unwrap();
    let a = acked.clone();
    assert!(c
        .run_until(Duration::from_secs(5), move |_| a.borrow().is_some())
        .unwrap());
    println!("{:?} {:?}", got.borrow(), acked.borrow());
    server.stop().unwrap();
    assert!(c
        .run_until(Duration::from_secs(5), |io| io.state()
            == ClientState::Disconnected)
        .unwrap());
    assert_eq!(c.io().disconnect_reason(), Some("server shutting down"));
}
