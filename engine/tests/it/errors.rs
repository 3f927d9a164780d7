//! Each user error is one clear message and a documented exit code.

use std::net::TcpListener;

use engine::{
    exit, run_client, Backend, ClientConfig, Error, Mode, Server, ServerConfig, Workload,
};

use crate::harness::TestServer;

#[test]
fn connection_refused_names_the_address() {
    // Bind then drop: a port on which nothing listens.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ClientConfig {
        port,
        ..Default::default()
    };
    let e = run_client(&config, &|_| {}).unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("refused"),
        "{text}"
    );
    assert_eq!(e.exit_code(), exit::FAILURE);
}

#[test]
fn address_in_use_is_a_bind_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = Server::bind(ServerConfig {
        bind: [127, 0, 0, 1].into(),
        port,
        ..Default::default()
    })
    .err()
    .expect("second bind fails");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("could not bind 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("in use"), "{text}");
}

#[test]
fn size_out_of_range_is_a_usage_error() {
    let e = run_client(
        &ClientConfig {
            size: 16,
            ..Default::default()
        },
        &|_| {},
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), exit::USAGE);
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[test]
fn the_servers_refusal_reason_reaches_the_client() {
    let server = TestServer::start(ServerConfig {
        max_size: 4096,
        ..Default::default()
    });
    let mut config = server.client(Backend::Syscall, Mode::TwoCopy, Workload::Echo);
    config.size = 8192;
    let e = run_client(&config, &|_| {}).unwrap_err();
    assert_eq!(e.exit_code(), exit::REFUSED);
    let text = e.to_string();
    assert!(
        text.contains("refused") && text.contains("8192") && text.contains("-s"),
        "{text}"
    );
}

#[test]
fn a_mode_the_server_does_not_serve_is_refused() {
    let server = TestServer::start(ServerConfig {
        mode: Some(Mode::Zc),
        ..Default::default()
    });
    let config = server.client(Backend::Syscall, Mode::OneCopy, Workload::Echo);
    let e = run_client(&config, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("serves zc only"), "{e}");
}

#[test]
fn zc_fixed_on_syscall_is_a_usage_error() {
    let config = ClientConfig {
        mode: Mode::ZcFixed,
        ..Default::default()
    };
    let e = run_client(&config, &|_| {}).unwrap_err();
    assert_eq!(e.exit_code(), exit::USAGE);
    assert!(e.to_string().contains("needs the uring backend"), "{e}");
}
