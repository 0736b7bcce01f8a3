//! A TCP proxy in front of a server, which a test can cut off (every
//! connection through it closed, and new ones closed at once) and heal:
//! one node's network to Redis failing while the others' works.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy to one address.
pub struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Tells every proxied connection to close (bumped at each cut).
    cuts: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (a free port) to `to`.
    pub async fn start(to: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (is_cut, cuts_tx) = (cut.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_now = cuts_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_now.changed() => {}
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            cut,
            cuts,
            task,
        })
    }

    /// Where to connect through it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every connection through it, and each new one at once.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Let connections through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
