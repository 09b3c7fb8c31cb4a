//! A fault-injecting TCP proxy on port 0, of our own: put it between a client
//! and a real server, then switch what the network does at run time.
//!
//! ```text
//! client ──► FaultProxy (127.0.0.1:0) ──► upstream server
//! ```
//!
//! Modes ([`Fault`]), switchable at any moment with [`FaultProxy::set`]; every
//! open connection and every new one follows the current mode:
//!
//! - [`Fault::Pass`]: bytes are copied both ways.
//! - [`Fault::Blackhole`]: bytes are read and dropped both ways and **no FIN or
//!   RST is sent**: both ends still see an open socket (a half-open link, as
//!   after a NAT timeout or a cable pulled). Back to `Pass`, nothing dropped is
//!   resent.
//! - [`Fault::Hang`]: new connections are accepted and then nothing is ever
//!   forwarded (no upstream connection is made), as a server that accepted TCP
//!   and never answered the upgrade (or the request). Open connections pass.
//! - [`Fault::ResetMidFrame`]: the next chunk the upstream sends is cut in half:
//!   the first half is forwarded, then the client's socket is reset (RST, linger
//!   0) and the upstream's closed. While the mode lasts, every connection is
//!   reset so on its next chunk from upstream (a reconnect's upgrade answer too).
//! - [`Fault::Drip`]: bytes are forwarded one at a time, `every` apart; the mode
//!   is looked at before every byte, so a switch applies to the rest of a chunk
//!   (a dripping download can be cut by switching to `ResetMidFrame`).
//! - [`Fault::Latency`]: each chunk is held `base` plus up to `jitter` (uniform)
//!   before it is forwarded; order is kept.
//!
//! [`FaultProxy::set_rest`] gives plain HTTP connections (those whose first
//! request is not a WebSocket upgrade: REST) a mode of their own, so a snapshot
//! download can drip while the socket passes.
//!
//! Invariants: the proxy never reorders or duplicates bytes; it drops bytes
//! only in `Blackhole` (and what follows a reset); every thread it starts ends
//! within a few tens of milliseconds of the proxy being dropped, and dropping it
//! closes every connection it holds. [`FaultProxy::accepted`] counts every TCP
//! connection accepted, whatever the mode.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the network does; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Copy bytes both ways.
    Pass,
    /// Swallow bytes both ways; never close.
    Blackhole,
    /// New connections are accepted and never answered.
    Hang,
    /// Cut the next upstream chunk in half and reset the client.
    ResetMidFrame,
    /// One byte at a time, `every` apart.
    Drip {
        /// Time between two bytes.
        every: Duration,
    },
    /// Each chunk delayed by `base` + up to `jitter`.
    Latency {
        /// Fixed delay.
        base: Duration,
        /// Extra uniform random delay, at most this.
        jitter: Duration,
    },
}

struct Shared {
    fault: Mutex<Fault>,
    rest: Mutex<Option<Fault>>,
    closed: AtomicBool,
    accepted: AtomicU64,
    resets: AtomicU64,
    dropped: AtomicU64,
    upstream_closed: AtomicU64,
    upgrades: AtomicU64,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }
    fn fault_for(&self, websocket: bool) -> Fault {
        match *self.rest.lock().unwrap() {
            Some(f) if !websocket => f,
            _ => self.fault(),
        }
    }
}

/// A running proxy; closed (with every connection it holds) on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// How often a pump looks at the mode and at the proxy being closed while no
/// byte arrives.
const TICK: Duration = Duration::from_millis(20);

impl FaultProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream`, starting in [`Fault::Pass`].
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Pass),
            rest: Mutex::new(None),
            closed: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            upstream_closed: AtomicU64::new(0),
            upgrades: AtomicU64::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || accept_loop(listener, upstream, s));
        FaultProxy { addr, shared }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switch the mode; applies at once to open connections and new ones.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// A mode for plain HTTP connections only (`None`: they follow [`Self::set`]).
    pub fn set_rest(&self, fault: Option<Fault>) {
        *self.shared.rest.lock().unwrap() = fault;
    }

    /// The current mode.
    ///
    /// (Of WebSocket connections, when [`Self::set_rest`] set another for REST.)
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// TCP connections accepted so far (every mode).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose first request was a WebSocket upgrade so far.
    pub fn upgrades(&self) -> u64 {
        self.shared.upgrades.load(Ordering::SeqCst)
    }

    /// Connections reset by [`Fault::ResetMidFrame`] so far.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Connections whose upstream closed (or reset) its side so far: e.g. a
    /// server that dropped an idle client.
    pub fn upstream_closed(&self) -> u64 {
        self.shared.upstream_closed.load(Ordering::SeqCst)
    }

    /// Bytes swallowed by [`Fault::Blackhole`] so far (both ways).
    pub fn dropped_bytes(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while !shared.closed.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                std::thread::spawn(move || connection(client, upstream, s));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 4),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

fn connection(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let websocket = is_upgrade(&client, &shared);
    if websocket {
        shared.upgrades.fetch_add(1, Ordering::SeqCst);
    }
    if shared.fault_for(websocket) == Fault::Hang {
        // Hold the socket open, answer nothing, until the client gives up or
        // the proxy closes.
        let _ = client.set_read_timeout(Some(TICK));
        let mut sink = [0u8; 4096];
        while !shared.closed.load(Ordering::SeqCst) {
            match (&client).read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
        return;
    }
    let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        return;
    };
    let _ = up.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let (c2, u2) = (
        client.try_clone().expect("clone"),
        up.try_clone().expect("clone"),
    );
    let (s2, r2) = (shared.clone(), reset.clone());
    let down = std::thread::spawn(move || pump(u2, c2, true, websocket, &s2, &r2));
    pump(client, up, false, websocket, &shared, &reset);
    let _ = down.join();
}

/// Copy `from` → `to` under the current mode. `downstream`: upstream → client.
/// Returns when either side closes, the connection is reset, or the proxy closes.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    downstream: bool,
    websocket: bool,
    shared: &Shared,
    reset: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    let mut rng = Rng::seeded();
    loop {
        if shared.closed.load(Ordering::SeqCst) || reset.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                if downstream {
                    shared.upstream_closed.fetch_add(1, Ordering::SeqCst);
                }
                // An orderly close: passed on, unless the link is a black hole
                // (then the FIN is swallowed too, as on a dead path).
                if shared.fault_for(websocket) != Fault::Blackhole {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                wait_while_blackholed(shared, websocket, reset);
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                if downstream {
                    shared.upstream_closed.fetch_add(1, Ordering::SeqCst);
                }
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        };
        match deliver(&buf[..n], &mut to, downstream, websocket, shared, &mut rng) {
            Delivered::Ok => {}
            Delivered::Failed => {
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            Delivered::Reset => {
                reset.store(true, Ordering::SeqCst);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

enum Delivered {
    Ok,
    Failed,
    Reset,
}

/// Forward one chunk under the current mode. A drip looks at the mode before
/// every byte, so a switch (to a reset, say) cuts a download that is dripping.
fn deliver(
    mut chunk: &[u8],
    to: &mut TcpStream,
    downstream: bool,
    websocket: bool,
    shared: &Shared,
    rng: &mut Rng,
) -> Delivered {
    let ok = |r: std::io::Result<()>| {
        if r.is_ok() {
            Delivered::Ok
        } else {
            Delivered::Failed
        }
    };
    loop {
        if chunk.is_empty() {
            return Delivered::Ok;
        }
        match shared.fault_for(websocket) {
            Fault::Pass | Fault::Hang => return ok(to.write_all(chunk)),
            Fault::Blackhole => {
                shared
                    .dropped
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                return Delivered::Ok;
            }
            Fault::ResetMidFrame if downstream => {
                let half = (chunk.len() / 2).max(1).min(chunk.len());
                let _ = to.write_all(&chunk[..half]);
                let _ = to.flush();
                reset_now(to);
                shared.resets.fetch_add(1, Ordering::SeqCst);
                return Delivered::Reset;
            }
            Fault::ResetMidFrame => return ok(to.write_all(chunk)),
            Fault::Drip { every } => {
                if to.write_all(&chunk[..1]).is_err() {
                    return Delivered::Failed;
                }
                chunk = &chunk[1..];
                std::thread::sleep(every);
            }
            Fault::Latency { base, jitter } => {
                let extra = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_micros(rng.below(jitter.as_micros() as u64 + 1))
                };
                std::thread::sleep(base + extra);
                return ok(to.write_all(chunk));
            }
        }
    }
}

/// Whether the client's first request is a WebSocket upgrade (peeked, not
/// consumed; at most a second's wait for its head).
fn is_upgrade(client: &TcpStream, shared: &Shared) -> bool {
    let _ = client.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 4096];
    for _ in 0..50 {
        if shared.closed.load(Ordering::SeqCst) {
            return false;
        }
        if let Ok(n) = client.peek(&mut buf) {
            if n == 0 {
                return false;
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            if head.contains("\r\n\r\n") || n == buf.len() {
                return head.contains("upgrade: websocket");
            }
        }
        std::thread::sleep(TICK / 4);
    }
    false
}

fn wait_while_blackholed(shared: &Shared, websocket: bool, reset: &AtomicBool) {
    while shared.fault_for(websocket) == Fault::Blackhole
        && !shared.closed.load(Ordering::SeqCst)
        && !reset.load(Ordering::SeqCst)
    {
        std::thread::sleep(TICK);
    }
}

/// Make the next close of `s` send RST instead of FIN, and close it.
fn reset_now(s: &TcpStream) {
    let sock = socket2::SockRef::from(s);
    let _ = sock.set_linger(Some(Duration::ZERO));
    // shutdown(Read) makes the kernel drop its receive side; the RST goes out when
    // the last handle is dropped (the pumps hold the others and return at once).
    let _ = s.shutdown(Shutdown::Read);
}

/// xorshift64*: jitter needs no cryptographic randomness and no dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((t ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
