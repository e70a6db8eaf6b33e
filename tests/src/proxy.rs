//! [`Proxy`]: a TCP proxy on 127.0.0.1 in front of a real service, for tests of what the
//! server does when its link to that service fails: [`Proxy::cut`] closes every proxied
//! connection and refuses new ones (the service is down), [`Proxy::freeze`] keeps the
//! proxied connections open but carries nothing more on them, while new ones pass (a
//! connection that went silent without closing, as after a failover), and
//! [`Proxy::restore`] brings the service back.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy's state, as its connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    /// Connections opened before the freeze (generation lower than this) carry nothing.
    Frozen(u64),
    Cut,
}

/// A proxy from its own port to `target`.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect instead of the service.
    pub addr: SocketAddr,
    target: String,
    mode: Arc<watch::Sender<Mode>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `target` (`host:port`), open.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mut proxy = Self {
            addr,
            target: target.to_owned(),
            mode: Arc::new(watch::channel(Mode::Open).0),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            accept: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let (target, mode, generation) = (
            self.target.clone(),
            self.mode.clone(),
            self.generation.clone(),
        );
        self.accept = Some(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let born = generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, born, mode.subscribe()));
            }
        }));
    }

    /// Closes every proxied connection and refuses new ones.
    pub fn cut(&mut self) {
        self.mode.send_replace(Mode::Cut);
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }

    /// Carries nothing more on the connections open now, which stay open; new
    /// connections pass.
    pub fn freeze(&self) {
        let now = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        self.mode.send_replace(Mode::Frozen(now));
    }

    /// Accepts (and carries) connections again, on the same port.
    pub async fn restore(&mut self) {
        self.mode.send_replace(Mode::Open);
        if self.accept.is_none() {
            // The aborted accept task drops its listener asynchronously: retry briefly.
            let started = tokio::time::Instant::now();
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => break listener,
                    Err(e) => {
                        assert!(
                            started.elapsed() < std::time::Duration::from_secs(2),
                            "re-bind the proxy's port {}: {e}",
                            self.addr
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
            };
            self.serve(listener);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies both ways until either side ends, the proxy is cut, or (frozen) forever
/// silent.
async fn pipe(client: TcpStream, server: TcpStream, born: u64, mut mode: watch::Receiver<Mode>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let carry = async {
        tokio::select! {
            _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
            _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
        }
    };
    tokio::pin!(carry);
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Cut => break,
            Mode::Frozen(before) if born < before => {
                // Open but deaf: hold both ends until the proxy is cut or dropped.
                while mode.changed().await.is_ok() {
                    if *mode.borrow() == Mode::Cut {
                        break;
                    }
                }
                break;
            }
            _ => {}
        }
        tokio::select! {
            () = &mut carry => break,
            changed = mode.changed() => if changed.is_err() { break },
        }
    }
    // Returning drops both sockets: each side sees its connection close.
}
