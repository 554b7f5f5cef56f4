//! Local processes the tests start themselves on loopback ports: `nats-server` and a throwaway
//! PostgreSQL, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until PostgreSQL accepts queries (it listens before it has finished starting up).
pub async fn wait_pg_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(pg_bin("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL on port {port} not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `nats-server` on a loopback port.
pub struct Nats {
    pub port: u16,
    child: Option<Child>,
}

impl Nats {
    pub async fn start() -> Nats {
        let mut n = Nats {
            port: free_port(),
            child: None,
        };
        n.restart().await;
        n
    }

    pub async fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run nats-server ({e}): install it with `apt-get install -y nats-server`"
                )
            });
        self.child = Some(child);
        wait_port(self.port, "nats-server", Duration::from_secs(10)).await;
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, "-KILL");
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway PostgreSQL cluster in a temporary directory.
pub struct Postgres {
    pub port: u16,
    pub child: Child,
    user: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

pub fn pg_bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Path::new(&dir).join(name);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's {name} not found under /usr/lib/postgresql/*/bin (or $PG_BIN): install it with `apt-get install -y postgresql`")
    })
}

/// As root, the uid/gid of the `postgres` system user, whom PostgreSQL runs as.
pub fn postgres_user() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:")).unwrap_or_else(|| {
        panic!("running as root, but there is no `postgres` user to run PostgreSQL as (apt-get install -y postgresql creates it)")
    });
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
}

pub fn as_pg_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl Postgres {
    pub async fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let user = postgres_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_pg_user(&mut Command::new(pg_bin("initdb")), user)
            .args([
                "-U",
                "shangliang",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = Self::spawn(dir.path(), port, user);
        let pg = Postgres {
            port,
            child,
            user,
            dir,
        };
        wait_pg_ready(port).await;
        pg
    }

    fn spawn(dir: &Path, port: u16, user: Option<(u32, u32)>) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("postgres.log"))
            .unwrap();
        as_pg_user(&mut Command::new(pg_bin("postgres")), user)
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ])
            .arg("-k")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres")
    }

    /// Starts it again (same data, same port) after it was stopped.
    pub async fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.port, self.user);
        wait_pg_ready(self.port).await;
    }

    pub fn url(&self) -> String {
        format!("postgres://shangliang@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: the data is thrown away anyway.
        stop(&mut self.child, "-QUIT");
    }
}


/// nginx as a local process (`nginx -p DIR -g 'daemon off;'`) on its own loopback port, with
/// everything it writes (pid, logs, temp files, caches) in a temporary directory. Stopped on drop.
pub struct Nginx {
    child: Child,
    /// Where it listens (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `http(dir, port)` as the body of its `http {}` block (`dir`: its
    /// temporary directory; `port`: the port it must `listen` on) and waits (≤ 10 s) until it
    /// accepts connections.
    pub async fn start(http: impl FnOnce(&str, u16) -> String) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display().to_string();
        let body = http(&d, port);
        // Running as root (CI), nginx's workers would otherwise become `nobody`.
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "worker_processes 1;\n{user}pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{body}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), &conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (apt-get install nginx)");
        let mut n = Nginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited ({status}): {}\n{conf}", n.log());
            }
            assert!(Instant::now() < deadline, "nginx did not start: {}", n.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    }

    /// Its error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers and exits (SIGKILL would orphan the
    /// workers); SIGKILL only if it does not go within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the tests run as root (`id -u` rather than libc: one process at start).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}
