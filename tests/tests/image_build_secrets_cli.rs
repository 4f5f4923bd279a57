//! Build secrets from the command line (`berth image build --secret`) and from Compose
//! (`build.secrets` naming top-level secrets, short and long syntax, `file:` and `environment:`):
//! the step reads them, the
//! image does not hold them.

use std::fs;

use berth_tests::host::{self, Host};

#[test_with::root()]
#[test]
fn cli_and_compose_secrets_reach_run_but_not_the_image() {
    host::require_tools();
    let host = Host::new("bsecret");
    host.busybox_image();
    let file = host.stack.join("token.txt");
    fs::write(&file, "file-secret-123").expect("secret file");
    fs::write(
        host.stack.join("Dockerfile"),
        "FROM busybox:e2e\nRUN --network=none --mount=type=secret,id=tok,required=true --mount=type=secret,id=envtok,env=ENVTOK cat /run/secrets/tok | wc -c > /len && echo ${#ENVTOK} >> /len\n",
    )
    .expect("Dockerfile");
    let len = |host: &Host, image: &str| {
        host.ok(&[
            "container",
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "cat",
            "/len",
        ])
    };
    let file_arg = format!("id=tok,src={}", file.display());
    host.ok(&[
        "image",
        "build",
        "-t",
        "sec:cli",
        "--secret",
        &file_arg,
        "--secret",
        "id=envtok,env=PATH",
        host.stack.to_str().expect("utf-8 path"),
    ]);
    // The variable's value is whatever the CLI's environment holds: only its presence is sure.
    let got = len(&host, "sec:cli");
    let got: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(got[0], "15");
    assert_ne!(got.get(1).copied(), Some("0"), "{got:?}");
    // A secret file that is not there: refused before anything runs, naming it.
    let out = host.berth(&[
        "image",
        "build",
        "--secret",
        "id=tok,src=/nonexistent/berth-secret",
        host.stack.to_str().expect("utf-8 path"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret \"tok\": reading /nonexistent/berth-secret"),
        "{err}"
    );

    fs::write(
        host.stack.join("compose.yaml"),
        "name: bsecret\nservices:\n  app:\n    build:\n      context: .\n      secrets:\n        - tok\n        - source: other\n          target: envtok\nsecrets:\n  tok:\n    file: ./token.txt\n  other:\n    environment: BSECRET_OTHER\n",
    )
    .expect("compose");
    // An `environment:` secret takes its value from the project's environment (.env here).
    fs::write(host.stack.join(".env"), "BSECRET_OTHER=abcdefg\n").expect(".env");
    // Secrets are not in the key: the CLI's build would serve this step from the cache.
    let out = host.ok(&["build", "--no-cache"]);
    assert!(!out.contains("build.secrets"), "not warned any more: {out}");
    // The long syntax's target is the id the Dockerfile names (`envtok`, read into ENVTOK).
    assert_eq!(
        len(&host, "bsecret-app")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["15", "7"]
    );
    let hist = host.ok(&["image", "history", "--no-trunc", "bsecret-app"]);
    assert!(
        !hist.contains("file-secret-123") && !hist.contains("abcdefg"),
        "{hist}"
    );
}

/// Compose `build.secrets` naming a top-level secret whose file does not exist: the build is
/// refused before any step runs, naming the secret and the file, and leaves no image (not
/// even a dangling one from the steps before the secret's).
#[test_with::root()]
#[test]
fn a_missing_compose_secret_file_is_refused_before_any_step() {
    host::require_tools();
    let host = Host::new("bsecmiss");
    host.busybox_image();
    fs::write(
        host.stack.join("Dockerfile"),
        "FROM busybox:e2e\nRUN --network=none echo before > /before\n\
         RUN --network=none --mount=type=secret,id=tok cat /run/secrets/tok > /leak\n",
    )
    .expect("Dockerfile");
    fs::write(
        host.stack.join("compose.yaml"),
        "name: bsecmiss\nservices:\n  app:\n    build:\n      context: .\n      secrets: [tok]\n\
         secrets:\n  tok:\n    file: ./missing-token.txt\n",
    )
    .expect("compose");
    let images_before = host.ok(&["image", "ls", "-a", "-q"]);
    let out = host.berth(&["build"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("secret \"tok\"") && text.contains("missing-token.txt"),
        "{text}"
    );
    assert!(!text.contains("echo before"), "a step ran: {text}");
    assert!(
        !host
            .berth(&["image", "inspect", "bsecmiss-app"])
            .status
            .success()
    );
    assert_eq!(host.ok(&["image", "ls", "-a", "-q"]), images_before);
}
