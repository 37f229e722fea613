//! A RabbitMQ node of a test's own, for tests that stop, kill and restart a
//! broker: the shared broker on 5672 must never be the one that goes down.
//!
//! The node has its own name, ports, data directory and Erlang cookie (its
//! HOME is the data directory), and registers with an epmd of its own, so
//! nothing it does reaches the shared node or the system epmd. To inspect it
//! by hand: `HOME=<dir> ERL_EPMD_PORT=<epmd port> rabbitmqctl -n <node> status`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

/// Debian's `/usr/sbin/rabbitmq-server` is a wrapper that, run as root,
/// switches to the `rabbitmq` user and logs to the shared broker's
/// `/var/log/rabbitmq`; the script it wraps runs as the caller.
const DEBIAN_SERVER_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A boot takes about 5 s on an idle machine; a recovery after a crash
/// with many messages, and a loaded CI machine, take longer.
const BOOT_DEADLINE: Duration = Duration::from_secs(120);
const STOP_DEADLINE: Duration = Duration::from_secs(60);

pub struct PrivateBroker {
    node_name: String,
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    epmd: Child,
    /// The `rabbitmq-server` script, leader of a process group holding the
    /// Erlang VM; `None` while the node is down.
    node: Option<Child>,
}

impl PrivateBroker {
    /// A fresh node with an empty data directory, once it accepts AMQP
    /// connections.
    pub async fn start(name: &str) -> PrivateBroker {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let label: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let node_name = format!(
            "taxiway-{label}-{}-{}@localhost",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = super::temp_dir(name);
        let port = super::free_port();
        let epmd_port = super::free_port();
        let epmd = start_epmd(epmd_port, &dir);
        let mut broker = PrivateBroker {
            node_name,
            dir,
            port,
            dist_port: super::free_port(),
            epmd_port,
            epmd,
            node: None,
        };
        broker.boot().await;
        broker
    }

    pub fn amqp_uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// A clean shutdown (SIGTERM, as systemd does it), waited for.
    pub fn stop(&mut self) {
        assert!(
            self.terminate(STOP_DEADLINE),
            "the private RabbitMQ node did not stop within {STOP_DEADLINE:?}; see {}",
            self.dir.display()
        );
    }

    /// A crash: SIGKILL to the Erlang VM, with no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(node) = self.node.take() {
            signal("-KILL", &format!("-{}", node.id()));
            reap(node);
        }
    }

    /// The node again, on the same port and data directory, after a stop or
    /// a kill (or cleanly stopped first if it is still up).
    pub async fn restart(&mut self) {
        if self.node.is_some() {
            self.stop();
        }
        self.boot().await;
    }

    async fn boot(&mut self) {
        let config = self.dir.join("rabbitmq.conf");
        std::fs::write(
            &config,
            format!("listeners.tcp.1 = 127.0.0.1:{}\n", self.port),
        )
        .unwrap();
        let plugins = self.dir.join("enabled_plugins");
        std::fs::write(&plugins, "[].\n").unwrap();
        // Empty, so that /etc/rabbitmq/rabbitmq-env.conf (the shared node's
        // name) is not read.
        let env_file = self.dir.join("rabbitmq-env.conf");
        std::fs::write(&env_file, "").unwrap();
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.out"))
            .unwrap();
        let script = if Path::new(DEBIAN_SERVER_SCRIPT).exists() {
            DEBIAN_SERVER_SCRIPT
        } else {
            "rabbitmq-server"
        };
        let mut command = Command::new(script);
        command
            // Inherited RABBITMQ_* or ERL_* variables would leak into the node.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node_name)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", &env_file)
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            // Without `-start_epmd false` a node that found its epmd gone
            // would start a daemon of its own, which nobody would reap.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output);
        // Its own process group: kill() reaches the script and the VM, never
        // the test process.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let node = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        self.node = Some(node);
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            if let Some(status) = self.node.as_mut().unwrap().try_wait().unwrap() {
                self.node = None;
                panic!(
                    "the private RabbitMQ node exited while booting ({status}):\n{}",
                    self.log_tail()
                );
            }
            let attempt = tokio::time::timeout(
                Duration::from_secs(5),
                Connection::connect(&self.amqp_uri(), ConnectionProperties::default()),
            )
            .await;
            if let Ok(Ok(connection)) = attempt {
                let _ = connection.close(200, "ready".into()).await;
                return;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "the private RabbitMQ node did not accept AMQP within {BOOT_DEADLINE:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then SIGKILL once `grace` is over; whether the node stopped
    /// within it.
    fn terminate(&mut self, grace: Duration) -> bool {
        let Some(node) = self.node.as_mut() else {
            return true;
        };
        // To the script alone: its trap forwards SIGTERM to the VM and waits
        // for it to stop.
        signal("-TERM", &node.id().to_string());
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if node.try_wait().unwrap().is_some() {
                reap(self.node.take().unwrap());
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        let log = self.dir.join("log").join(format!("{}.log", self.node_name));
        for path in [self.dir.join("server.out"), log] {
            let content = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            text.push_str(&format!("--- {}\n", path.display()));
            text.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
            text.push('\n');
        }
        text
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // After a failed assertion nobody reads the data again: no need to
        // wait for a clean stop.
        let grace = if std::thread::panicking() {
            Duration::ZERO
        } else {
            Duration::from_secs(10)
        };
        self.terminate(grace);
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

/// An epmd in the foreground, so that it is our child to kill and reap, once
/// it listens (a node started before that would fail to register).
fn start_epmd(port: u16, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("epmd.out")).unwrap();
    let mut epmd = Command::new("epmd")
        .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run epmd: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = epmd.try_wait().unwrap() {
            panic!("epmd exited ({status}) on port {port}");
        }
        assert!(Instant::now() < deadline, "epmd never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    epmd
}

/// Waits for the script, then for the rest of its process group: the VM is
/// not our child, and it can outlive the script by a moment, still holding
/// its ports.
fn reap(mut leader: Child) {
    let _ = leader.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_alive(leader.id()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a thread of a process of `group` still runs. Zombies do not
/// count: where PID 1 does not reap orphans (as in this project's VMs) the
/// VM's helpers stay zombies forever. Threads do: a killed VM's main thread
/// turns zombie before the others have exited and released its ports.
fn group_alive(group: u32) -> bool {
    let group = group.to_string();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|process| {
        let Ok(threads) = std::fs::read_dir(process.path().join("task")) else {
            return false;
        };
        threads
            .flatten()
            .any(|thread| running_in(&thread.path().join("stat"), &group))
    })
}

fn running_in(stat: &Path, group: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(stat) else {
        return false;
    };
    // The command name, in parentheses, may contain spaces.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = fields.split_whitespace();
    let state = fields.next();
    let process_group = fields.nth(1);
    !matches!(state, Some("Z" | "X")) && process_group == Some(group)
}

/// std signals a child with SIGKILL only, and libc is not a dependency.
fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stderr(Stdio::null())
        .status();
}
