//! The `pacer` binary run by a bench: started on a config file, its
//! proxy and admin addresses read from its log, its later log lines
//! handed over as they come.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::sync::mpsc;

/// A running pacer (killed when dropped).
pub struct Pacer {
    pub child: Child,
    /// The first listener's address.
    pub proxy: SocketAddr,
    /// The admin API's address.
    pub admin: SocketAddr,
    /// Its log lines after the two `addr=` lines.
    pub lines: mpsc::UnboundedReceiver<String>,
}

impl Pacer {
    /// Starts pacer on `config` (one listener and the admin API) and waits
    /// until both listen.
    pub async fn start(config: &Path) -> Pacer {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pacer");
        let stderr = child.stderr.take().expect("stderr");
        let mut log = BufReader::new(stderr).lines();
        let mut addrs = Vec::new();
        while addrs.len() < 2 {
            let Ok(Some(line)) = log.next_line().await else {
                panic!("pacer exited before listening");
            };
            if let Some(addr) = line.split("addr=").nth(1) {
                addrs.push(addr.trim().parse().expect("addr"));
            }
        }
        let (send, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = log.next_line().await {
                let _ = send.send(line);
            }
        });
        Pacer {
            child,
            proxy: addrs[0],
            admin: addrs[1],
            lines,
        }
    }

    /// The body and head of `GET path` on the admin API.
    pub async fn admin_get(&self, path: &str) -> String {
        let admin = self.admin;
        let mut stream = TcpStream::connect(admin).await.expect("admin");
        let head = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        answer
    }
}

/// Runs `run` once per account count on a multi-threaded runtime, or
/// explains the usage when no count was given.
pub fn each_count<F: std::future::Future<Output = ()>>(
    bench: &str,
    counts: &[usize],
    run: impl Fn(usize) -> F,
) {
    if counts.is_empty() {
        println!("{bench}: no account counts given, nothing measured. Usage: cargo bench --bench {bench} -- ACCOUNTS...");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for &accounts in counts {
        runtime.block_on(run(accounts));
    }
}
