//! A TCP relay between a client and the broker that a test can cut and
//! restore: one client's network outage, with the broker (and every other
//! client's session) left running. Used by the edge tests and the chaos
//! suite's edge case.

/// A TCP relay between a device and the broker that the test can cut and
/// restore: the device's network outage, with the broker (and every other
/// client's session) left running.
#[derive(Debug)]
pub struct Link {
    port: u16,
    broker: u16,
    up: Option<(
        tokio::task::JoinHandle<()>,
        tokio_util::sync::CancellationToken,
    )>,
}

impl Link {
    /// A relay on a free loopback port to the broker on `broker`, up.
    pub async fn start(broker: u16) -> anyhow::Result<Link> {
        let mut link = Link {
            port: crate::free_port()?,
            broker,
            up: None,
        };
        link.restore().await?;
        Ok(link)
    }

    /// `mqtt://` URL of the relay.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Closes the listener and every relayed connection.
    pub async fn cut(&mut self) {
        if let Some((task, stop)) = self.up.take() {
            stop.cancel();
            let _ = task.await;
        }
    }

    /// Listens again and relays new connections.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let broker = self.broker;
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((mut device, _)) = accepted else {
                    continue;
                };
                let token = token.clone();
                relays.spawn(async move {
                    let Ok(mut upstream) =
                        tokio::net::TcpStream::connect(("127.0.0.1", broker)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut device, &mut upstream) => {}
                    }
                });
            }
            // Dropping the set aborts the relays: both sides see the
            // connection close.
            relays.shutdown().await;
        });
        self.up = Some((task, stop));
        Ok(())
    }
}
