//! moto as a loopback AWS endpoint (CodeBuild for wire-format checks, STS for tenant roles).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server (`python3 -m moto.server`) on a free loopback port; killed on drop.
pub struct Moto(Child, u16);

impl Moto {
    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.1
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }

    /// The identity moto's STS issued `access_key_id` to (GetCallerIdentity signed with it;
    /// moto looks the key up, the secret does not matter), e.g.
    /// `arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`.
    pub async fn caller_arn(&self, access_key_id: &str) -> String {
        use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sts::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(access_key_id, "any", None, None, "test"))
            .build();
        aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetCallerIdentity with {access_key_id}: {e:?}"))
            .arn
            .unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto and waits until it listens (30 s at most). Panics, never skips, when moto is
/// missing: it is pinned in tests/conformance/requirements.txt, which `.ci/run` installs.
pub fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (pip install -r tests/conformance/requirements.txt)");
    let mut moto = Moto(child, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = moto.0.try_wait() {
            panic!(
                "moto.server exited with {status}: is moto[server] installed? (pip install -r tests/conformance/requirements.txt)"
            );
        }
        assert!(
            Instant::now() < deadline,
            "moto.server did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}
