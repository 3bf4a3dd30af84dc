//! Starts a real `moto_server` (from PyPI's `moto[server]`) on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const WATCHDOG: &str = "import os, sys, threading\n\
from moto.server import main\n\
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
main(sys.argv[1:])\n";

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Starts a fresh server on a free port and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // moto runs under a tiny watchdog: it exits when its stdin closes,
        // i.e. when this test process ends, so no server outlives its tests.
        let child = Command::new(crate::paths::venv_python())
            .args(["-c", WATCHDOG, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts (run scripts/setup-venv)");
        let moto = Moto { child, addr };
        moto.wait_ready(Duration::from_secs(30));
        moto
    }

    /// One server shared by every test in this test binary (tests use
    /// distinct resource names). Never dropped: killed with the process
    /// watchdog when the test binary exits.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "GET /moto-api/data.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut buf = [0u8; 16];
                    if s.read(&mut buf)
                        .map(|n| buf[..n].starts_with(b"HTTP/1."))
                        .unwrap_or(false)
                    {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on {} within {limit:?}",
            self.addr
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
