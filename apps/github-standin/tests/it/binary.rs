//! The `github-standin` binary: generates the App key when absent, serves, stops on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the stand-in if the test fails before stopping it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn generates_a_private_key_0600_serves_health_and_stops_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("standin-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key_path = dir.join("secrets/github_app_key.pem");
    let port = amtp_testkit::free_port();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_github-standin"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--app-id",
                "1",
                "--installation-id",
                "2",
            ])
            .arg("--app-key")
            .arg(&key_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn github-standin"),
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    loop {
        let url = format!("http://127.0.0.1:{port}/_standin/health");
        let ready = runtime.block_on(async { reqwest::get(&url).await.map(|r| r.status() == 200) });
        if ready.unwrap_or(false) {
            break;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("github-standin exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "github-standin not ready after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let metadata = std::fs::metadata(&key_path).expect("key file written");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let pem = std::fs::read_to_string(&key_path).expect("read key");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    amtp_github_standin::AppKey::from_private_pem(&pem).expect("the written key parses");

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.0.wait().expect("wait");
    assert!(exit.success(), "exit status {exit}");
    let _ = std::fs::remove_dir_all(&dir);
}
