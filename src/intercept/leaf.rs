//! Leaf certificates for intercepted hosts, minted on first use and kept
//! in a bounded LRU (`[mitm] leaf_cache`): concurrent first handshakes for
//! one name wait for a single mint, and minting runs on the blocking pool,
//! so a slow mint never stalls other connections on an ingress thread.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::OnceCell;

use super::ca::Ca;

type Slot = Arc<OnceCell<Arc<CertifiedKey>>>;

/// The leaf cache.
pub struct Leaves {
    ca: Arc<Ca>,
    cache: Mutex<LruCache<String, Slot>>,
    minted: AtomicU64,
}

impl std::fmt::Debug for Leaves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaves")
            .field("minted", &self.minted.load(Ordering::Relaxed))
            .finish()
    }
}

impl Leaves {
    /// Leaves signed by `ca`, at most `capacity` kept.
    pub fn new(ca: Ca, capacity: NonZeroUsize) -> Self {
        Leaves {
            ca: Arc::new(ca),
            cache: Mutex::new(LruCache::new(capacity)),
            minted: AtomicU64::new(0),
        }
    }

    /// The leaf for `host`, minted if it is not cached.
    pub async fn get(&self, host: &str) -> Result<Arc<CertifiedKey>, String> {
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.get_or_insert(host.to_owned(), Slot::default).clone()
        };
        let leaf = slot
            .get_or_try_init(|| async {
                let (ca, name) = (self.ca.clone(), host.to_owned());
                let minted = tokio::task::spawn_blocking(move || ca.mint(&name)).await;
                self.minted.fetch_add(1, Ordering::Relaxed);
                match minted {
                    Ok(Ok(leaf)) => Ok(Arc::new(leaf)),
                    Ok(Err(err)) => Err(format!("{err:#}")),
                    Err(err) => Err(err.to_string()),
                }
            })
            .await?;
        Ok(leaf.clone())
    }

    /// How many leaves were minted since start.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }
}

/// Serves one leaf, whatever the ClientHello asks.
#[derive(Debug)]
pub struct OneLeaf(pub Arc<CertifiedKey>);

impl ResolvesServerCert for OneLeaf {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_mint_per_name_however_many_ask_and_the_oldest_go_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = super::super::ca::init(dir.path(), false).expect("init");
        let ca = Ca::load(&written.cert, &written.key).expect("load");
        let leaves = Arc::new(Leaves::new(ca, NonZeroUsize::new(2).expect("2")));
        let asks: Vec<_> = (0..8)
            .map(|_| {
                let leaves = leaves.clone();
                tokio::spawn(async move { leaves.get("a.example.com").await })
            })
            .collect();
        for ask in asks {
            ask.await.expect("task").expect("leaf");
        }
        assert_eq!(leaves.minted(), 1, "concurrent first asks mint once");
        leaves.get("b.example.com").await.expect("b");
        leaves.get("a.example.com").await.expect("a, cached");
        assert_eq!(leaves.minted(), 2);
        leaves.get("c.example.com").await.expect("c evicts b");
        leaves.get("b.example.com").await.expect("b again");
        assert_eq!(leaves.minted(), 4, "b was the least recently used");
    }
}
