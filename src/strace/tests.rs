use super::*;

#[test]
fn the_lines_of_a_program_run_by_the_lesson_are_dropped() {
    let raw = "10 execve(\"/usr/bin/24_cluster\", [\"24_cluster\"], 0x7ff /* 3 vars */) = 0\n\
               11  1765000000.123456 execve(\"/usr/bin/redis-server\", [\"redis-server\"], 0x7ff /* 3 vars */) = 0\n\
               11 epoll_wait(5<anon_inode:[eventpoll]>, [], 10128, 100) = 0\n\
               10 connect(3<TCP:[1]>, {sa_family=AF_INET}, 16) = 0\n\
               12 execve(\"/usr/bin/redis-server\", [\"redis-server\"], 0x7ff) = -1 ENOENT (No such file or directory)\n\
               12 write(2<pipe:[3]>, \"x\", 1) = 1\n";
    let kept = without_program(raw, "redis-server");
    assert!(!kept.contains("epoll_wait"), "{kept}");
    assert!(kept.contains("10 connect("), "{kept}");
    assert!(
        kept.contains("12 write("),
        "a failed execve runs nothing: {kept}"
    );
}

#[test]
fn parses_a_decorated_line() {
    let line = r#"9426  accept4(3<TCP:[127.0.0.1:38409]>, {sa_family=AF_INET, sin_port=htons(53312), sin_addr=inet_addr("127.0.0.1")}, [128 => 16], SOCK_CLOEXEC) = 5<TCP:[127.0.0.1:38409->127.0.0.1:53312]>"#;
    let c = parse_line(line).unwrap();
    assert_eq!(c.name, "accept4");
    assert_eq!(c.first_arg, "3<TCP:[127.0.0.1:38409]>");
    assert_eq!(c.key(), "accept4(3) = 5");
    let w = parse_line(r#"write(4<TCP:[127.0.0.1:2->127.0.0.1:1]>, "x", 1) = 1"#).unwrap();
    assert_eq!(w.first_arg, "4<TCP:[127.0.0.1:2->127.0.0.1:1]>");
    assert_eq!(w.key(), "write(4) = 1");
    let e = parse_line("epoll_ctl(3<anon_inode:[eventpoll]>, EPOLL_CTL_ADD, 8<TCP:[127.0.0.1:1->127.0.0.1:2]>, {events=EPOLLIN|EPOLLRDHUP|EPOLLET, data={u32=16, u64=16}}) = 0").unwrap();
    assert_eq!(e.key(), "epoll_ctl(3, EPOLL_CTL_ADD, 8) = 0");
    assert!(e.on_socket());
    let waker = parse_line("epoll_ctl(3<anon_inode:[eventpoll]>, EPOLL_CTL_ADD, 4<anon_inode:[eventfd]>, {events=EPOLLIN|EPOLLET, data={u32=0, u64=0}}) = 0").unwrap();
    assert!(!waker.on_socket());
    assert!(c.on_socket());
}

#[test]
fn joins_calls_split_by_another_process() {
    let raw = "7 0.1 poll([{fd=3<TCP:[1]>, events=POLLIN}], 1, 4999 <unfinished ...>\n\
               8 0.2 sendto(9<TCP:[2]>, \"x\", 1, MSG_NOSIGNAL, NULL, 0) = 1\n\
               7 0.3 <... poll resumed>) = 1 ([{fd=3, revents=POLLIN}])\n";
    assert_eq!(
        join_resumed(raw),
        "8 0.2 sendto(9<TCP:[2]>, \"x\", 1, MSG_NOSIGNAL, NULL, 0) = 1\n\
         7 0.3 poll([{fd=3<TCP:[1]>, events=POLLIN}], 1, 4999) = 1 ([{fd=3, revents=POLLIN}])\n"
    );
}

#[test]
fn equals_inside_strings_are_not_the_result() {
    let c = parse_line(r#"write(4, "a = b", 5)                  = 5"#).unwrap();
    assert_eq!(c.text, r#"write(4, "a = b", 5)"#);
    assert_eq!(c.result, "5");
    assert!(!c.on_socket());
}

#[test]
fn masks_varying_lines_and_folds_repeats() {
    assert_eq!(
        mask_varying("spun 2725 times (varies)\n5 fixed\n"),
        "spun N times (varies)\n5 fixed\n"
    );
    let lines: Vec<String> = ["a", "b", "b", "b", "c"].map(String::from).to_vec();
    assert_eq!(
        fold_repeats(&lines),
        ["a", "b", "... the line above, 2 more times (varies)", "c"]
    );
}

#[test]
fn normalises_ports_in_order_and_keeps_zero() {
    let mut n = Normalizer::new();
    let a = n.apply("bind(3, htons(0)) listening on 127.0.0.1:5555, peer 127.0.0.1:6666");
    assert_eq!(
        a,
        "bind(3, htons(0)) listening on 127.0.0.1:40001, peer 127.0.0.1:40002"
    );
    assert_eq!(
        n.apply("htons(6666) socket:[999]"),
        "htons(40002) socket:[10001]"
    );
}
