//! The tier's connections, to one Redis or to a cluster, and the commands it sends
//! on them. A single Redis takes a lookup as one pipeline (`MGET` and a `PTTL` per
//! key) and writes as one `SET` pipeline. A cluster cannot: keys of one request
//! sit in many slots, and a pipeline or `MGET` across slots fails (`CROSSSLOT`).
//! So each key gets its own small pipeline, which the cluster client sends to the
//! node holding its slot, many at once on that node's connection. Hash tags would
//! put a request's keys in one slot, and so all of the cache on one node.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::{join_all, try_join_all};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{Cmd, Value};

use super::client::{Client, Timeouts};
use crate::{CacheError, Result};

/// Keys asked per `SCAN` page.
const SCAN_COUNT: usize = 1000;

/// Further tries at listing a cluster's masters before a sweep gives up.
const MASTERS_ATTEMPTS: usize = 3;

pub(super) struct Conns {
    kind: Kind,
    next: AtomicUsize,
}

enum Kind {
    Single(Vec<ConnectionManager>),
    Cluster(Vec<ClusterConnection>),
}

/// One connection of the pool, cheap to clone.
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A lookup's values and `PTTL`s (ms; -1 no expiry, -2 gone), in the keys' order.
pub(super) type Lookup = (Vec<Option<Vec<u8>>>, Vec<i64>);

/// What a batch of writes came to: how many were stored, and the first error.
pub(super) struct Written {
    pub(super) stored: usize,
    pub(super) error: Option<CacheError>,
}

impl Conns {
    /// Connections made lazily and remade in the background, so this neither waits
    /// for Redis nor fails while it is down. Must run inside a Tokio runtime.
    pub(super) fn new(
        client: Client,
        size: usize,
        timeouts: Timeouts,
        max_delay_ms: u64,
    ) -> Result<Self> {
        let size = size.max(1);
        let kind = match client {
            Client::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeouts.response))
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_number_of_retries(1)
                    .set_max_delay(std::time::Duration::from_millis(max_delay_ms.max(10)));
                let conns = (0..size)
                    .map(|_| {
                        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    })
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                Kind::Single(conns)
            }
            Client::Cluster(client) => {
                // Each connects to the seeds and discovers the nodes in the background;
                // calls made before that wait for it (within their timeout).
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(timeouts.connect)
                    .set_response_timeout(timeouts.response);
                let conns = (0..size)
                    .map(|_| client.get_pending_async_connection_with_config(config.clone()))
                    .collect();
                Kind::Cluster(conns)
            }
        };
        Ok(Self {
            kind,
            next: AtomicUsize::new(0),
        })
    }

    /// The next connection, round robin.
    pub(super) fn conn(&self) -> Conn {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match &self.kind {
            Kind::Single(c) => Conn::Single(c[i % c.len()].clone()),
            Kind::Cluster(c) => Conn::Cluster(c[i % c.len()].clone()),
        }
    }

    /// Every connection of the pool.
    pub(super) fn all(&self) -> Vec<Conn> {
        match &self.kind {
            Kind::Single(c) => c.iter().cloned().map(Conn::Single).collect(),
            Kind::Cluster(c) => c.iter().cloned().map(Conn::Cluster).collect(),
        }
    }
}

impl Conn {
    /// Each key's value and remaining TTL.
    pub(super) async fn lookup(&mut self, names: &[Vec<u8>]) -> Result<Lookup> {
        match self {
            Conn::Single(conn) => {
                let mut pipe = redis::pipe();
                pipe.cmd("MGET").arg(names);
                for name in names {
                    pipe.cmd("PTTL").arg(name);
                }
                let reply: Vec<Value> = pipe.query_async(conn).await?;
                split_reply(reply, names.len())
            }
            Conn::Cluster(conn) => {
                let replies = try_join_all(names.iter().map(|name| {
                    let mut conn = conn.clone();
                    let mut pipe = redis::pipe();
                    pipe.cmd("GET").arg(name).cmd("PTTL").arg(name);
                    async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
                }))
                .await?;
                let mut values = Vec::with_capacity(names.len());
                let mut ttls = Vec::with_capacity(names.len());
                for reply in replies {
                    let (value, ttl) = value_and_ttl(reply)?;
                    values.push(value);
                    ttls.push(ttl);
                }
                Ok((values, ttls))
            }
        }
    }

    /// `SET name value EX ttl` for each item.
    pub(super) async fn set_many(
        &mut self,
        items: Vec<(Vec<u8>, Vec<u8>)>,
        ttl_secs: u64,
    ) -> Written {
        let n = items.len();
        match self {
            Conn::Single(conn) => {
                let mut pipe = redis::pipe();
                for (name, value) in items {
                    pipe.cmd("SET")
                        .arg(name)
                        .arg(value)
                        .arg("EX")
                        .arg(ttl_secs)
                        .ignore();
                }
                match pipe.query_async::<()>(conn).await {
                    Ok(()) => Written {
                        stored: n,
                        error: None,
                    },
                    Err(e) => Written {
                        stored: 0,
                        error: Some(e.into()),
                    },
                }
            }
            Conn::Cluster(conn) => {
                let results = join_all(items.into_iter().map(|(name, value)| {
                    let mut conn = conn.clone();
                    let mut set = redis::cmd("SET");
                    set.arg(name).arg(value).arg("EX").arg(ttl_secs);
                    async move { set.query_async::<()>(&mut conn).await }
                }))
                .await;
                let mut written = Written {
                    stored: 0,
                    error: None,
                };
                for r in results {
                    match r {
                        Ok(()) => written.stored += 1,
                        Err(e) => {
                            written.error.get_or_insert(e.into());
                        }
                    }
                }
                written
            }
        }
    }

    /// Whether Redis answers: with a cluster, every master must, since each holds
    /// a share of the keys.
    /// One command, sent where its key lives.
    pub(super) async fn query<T: redis::FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T> {
        Ok(match self {
            Conn::Single(conn) => cmd.query_async(conn).await?,
            Conn::Cluster(conn) => cmd.query_async(conn).await?,
        })
    }

    pub(super) async fn ping(&mut self) -> Result<()> {
        match self {
            Conn::Single(conn) => {
                redis::cmd("PING").query_async::<String>(conn).await?;
            }
            Conn::Cluster(conn) => {
                let all = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                let reply = conn.route_command(redis::cmd("PING"), all).await?;
                if let Value::ServerError(e) = reply {
                    return Err(CacheError::Redis(e.into()));
                }
            }
        }
        Ok(())
    }

    /// Counts the keys matching `pattern`, or deletes them and counts what went.
    /// With a cluster, every master is scanned, as each holds a share of them.
    pub(super) async fn sweep(&mut self, pattern: &[u8], delete: bool) -> Result<u64> {
        match self {
            Conn::Single(conn) => {
                let mut swept = 0;
                let mut cursor = 0;
                loop {
                    let page: (u64, Vec<Vec<u8>>) = scan(cursor, pattern).query_async(conn).await?;
                    swept += take(conn, page.1, delete).await?;
                    if page.0 == 0 {
                        return Ok(swept);
                    }
                    cursor = page.0;
                }
            }
            Conn::Cluster(conn) => {
                let mut swept = 0;
                // The first call may go out while the client is still discovering
                // the cluster; a sweep (for tools, not requests) can ask again.
                let mut found = masters(conn).await;
                for _ in 0..MASTERS_ATTEMPTS {
                    if found.is_ok() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    found = masters(conn).await;
                }
                for (host, port) in found? {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    let mut cursor = 0;
                    loop {
                        let reply = conn
                            .route_command(scan(cursor, pattern), node.clone())
                            .await?;
                        let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)
                            .map_err(|_| {
                                CacheError::Corrupt("redis answered a SCAN with the wrong shape")
                            })?;
                        // Keys of many slots: the client splits the UNLINK by slot.
                        swept += take(conn, keys, delete).await?;
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
                Ok(swept)
            }
        }
    }
}

fn scan(cursor: u64, pattern: &[u8]) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

/// A page of keys counted, or deleted and the deleted ones counted.
async fn take(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: Vec<Vec<u8>>,
    delete: bool,
) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    if !delete {
        return Ok(keys.len() as u64);
    }
    Ok(redis::cmd("UNLINK").arg(&keys).query_async(conn).await?)
}

/// The cluster's masters as the client knows them (`host`, `port`): a `PING` to
/// every one, whose answer is keyed by address.
async fn masters(conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>> {
    let wrong = || CacheError::Corrupt("redis cluster named its masters in an unknown form");
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let Value::Map(replies) = conn.route_command(redis::cmd("PING"), all).await? else {
        return Err(wrong());
    };
    let mut out = Vec::with_capacity(replies.len());
    for (address, reply) in replies {
        if let Value::ServerError(e) = reply {
            return Err(CacheError::Redis(e.into()));
        }
        let address: String = redis::from_redis_value(address).map_err(|_| wrong())?;
        let (host, port) = address.rsplit_once(':').ok_or_else(wrong)?;
        let port = port.parse().map_err(|_| wrong())?;
        out.push((host.to_owned(), port));
    }
    if out.is_empty() {
        return Err(wrong());
    }
    Ok(out)
}

/// The `MGET` values and the `PTTL`s of a single Redis's lookup pipeline.
fn split_reply(reply: Vec<Value>, n: usize) -> Result<Lookup> {
    let wrong = || CacheError::Corrupt("redis answered a lookup with the wrong shape");
    if reply.len() != n + 1 {
        return Err(wrong());
    }
    let mut reply = reply.into_iter();
    let values: Vec<Option<Vec<u8>>> = reply
        .next()
        .map(redis::from_redis_value)
        .ok_or_else(wrong)?
        .map_err(|_| wrong())?;
    if values.len() != n {
        return Err(wrong());
    }
    let ttls = reply
        .map(|v| redis::from_redis_value::<i64>(v).map_err(|_| wrong()))
        .collect::<Result<Vec<i64>>>()?;
    Ok((values, ttls))
}

/// The `GET` value and the `PTTL` of one key's pipeline in a cluster.
fn value_and_ttl(reply: Vec<Value>) -> Result<(Option<Vec<u8>>, i64)> {
    let wrong = || CacheError::Corrupt("redis answered a lookup with the wrong shape");
    let [value, ttl]: [Value; 2] = reply.try_into().map_err(|_| wrong())?;
    Ok((
        redis::from_redis_value(value).map_err(|_| wrong())?,
        redis::from_redis_value(ttl).map_err(|_| wrong())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_lookup_replies_are_errors_not_panics() {
        let bulk = |b: &[u8]| Value::BulkString(b.to_vec());
        assert!(split_reply(vec![], 1).is_err());
        assert!(split_reply(vec![Value::Int(1), Value::Int(5)], 1).is_err());
        assert!(split_reply(vec![Value::Array(vec![]), Value::Int(5)], 1).is_err());
        assert!(split_reply(vec![Value::Array(vec![bulk(b"v")]), bulk(b"x")], 1).is_err());
        let (values, ttls) =
            split_reply(vec![Value::Array(vec![bulk(b"v")]), Value::Int(5)], 1).expect("fine");
        assert_eq!((values, ttls), (vec![Some(b"v".to_vec())], vec![5]));

        assert!(value_and_ttl(vec![]).is_err());
        assert!(value_and_ttl(vec![Value::Nil]).is_err());
        assert!(value_and_ttl(vec![Value::Nil, Value::Nil, Value::Nil]).is_err());
        assert!(value_and_ttl(vec![Value::Int(3), bulk(b"not a number")]).is_err());
        assert_eq!(
            value_and_ttl(vec![Value::Nil, Value::Int(-2)]).expect("fine"),
            (None, -2)
        );
    }
}
