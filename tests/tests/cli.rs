//! The CLI as people use it: the real `labscope` binary in local mode (an
//! in-process agent for this machine), its per-tool help, output fitted to
//! the terminal width, and errors that name the argument.

use std::process::{Command, Output};

use labscope_tests::workspace_binary;

fn labscope(args: &[&str], columns: Option<&str>) -> anyhow::Result<Output> {
    let mut cmd = Command::new(workspace_binary("labscope")?);
    cmd.args(args).env("RUST_LOG", "off");
    match columns {
        Some(c) => cmd.env("COLUMNS", c),
        None => cmd.env_remove("COLUMNS"),
    };
    Ok(cmd.output()?)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn per_tool_help_and_tool_listing() -> anyhow::Result<()> {
    // `call TOOL --help` and `tools TOOL` say the same: every argument with
    // its type, whether it is required, and an example.
    let help = labscope(&["call", "test_dns_query", "--help"], None)?;
    assert!(help.status.success(), "{}", text(&help.stderr));
    let help = text(&help.stdout);
    for arg in ["domain", "type", "server", "fromNode", "checkingDisabled"] {
        assert!(help.contains(arg), "help leaves out {arg}:\n{help}");
    }
    assert!(help.contains("(required)") && help.contains("Example: labscope call test_dns_query"));
    let tools = labscope(&["tools", "test_dns_query"], None)?;
    assert_eq!(text(&tools.stdout), help);
    // The listing names every toolset and says which are not served here.
    let all = text(&labscope(&["tools"], None)?.stdout);
    for line in [
        "node — ",
        "cluster — ",
        "flux — ",
        "get_cluster_health",
        "list_nodes",
    ] {
        assert!(all.contains(line), "{line} missing from:\n{all}");
    }
    assert!(all.contains("not served over MCP here"), "{all}");
    // A misspelt tool or argument is an error that says what is wrong.
    let nope = labscope(&["call", "list_node"], None)?;
    assert!(!nope.status.success());
    assert!(text(&nope.stderr).contains("no tool named \"list_node\""));
    let bad = labscope(
        &["call", "test_dns_query", "domain=example.com", "type=ANY"],
        None,
    )?;
    // A wrong argument is a usage error: exit 2, as clap's own.
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(
        err.contains("error [invalid_argument]")
            && err.contains("argument \"type\"")
            && err.contains("hint:"),
        "{err}"
    );
    Ok(())
}

#[test]
fn output_fits_the_terminal_width_and_loses_nothing() -> anyhow::Result<()> {
    let node = labscope::config::hostname();
    // Routes and rules: long lines that do not change between runs.
    let node_arg = format!("node={node}");
    let args = [
        "call",
        "get_node_networking",
        &node_arg,
        "sections=routes,rules",
    ];
    let wide = labscope(&args, Some("1000"))?;
    assert!(wide.status.success(), "{}", text(&wide.stderr));
    let narrow = labscope(&args, Some("50"))?;
    assert!(narrow.status.success(), "{}", text(&narrow.stderr));
    let (wide, narrow) = (text(&wide.stdout), text(&narrow.stdout));
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        words(&narrow),
        words(&wide),
        "wrapping lost or changed words"
    );
    for line in narrow.lines() {
        let longest_word = line
            .split_whitespace()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0);
        assert!(
            line.chars().count() <= 50 || longest_word > 46,
            "line longer than COLUMNS=50: {line:?}"
        );
    }
    assert!(
        wide.lines().any(|l| l.chars().count() > 50),
        "the wide output has lines to wrap:\n{wide}"
    );
    // Not a terminal and no COLUMNS: nothing is wrapped (pipes get whole lines).
    let piped = text(&labscope(&args, None)?.stdout);
    assert_eq!(
        piped.lines().count(),
        wide.lines().count(),
        "piped output is not wrapped"
    );
    // Progress goes to stderr only on a terminal: none here.
    assert!(text(&labscope(&args, None)?.stderr).trim().is_empty());
    Ok(())
}

/// `call --all` follows `nextCursor` to the end in one process: the pages
/// together hold exactly what one big page holds; `--output json` prints
/// one object per page per line; a tool without a cursor is refused.
#[test]
fn all_follows_the_cursor_to_the_end() -> anyhow::Result<()> {
    let node = format!("node={}", labscope::config::hostname());
    let base = [
        "call",
        "get_node_networking",
        node.as_str(),
        "sections=routes",
        "table=local",
    ];
    let run = |extra: &[&str]| -> anyhow::Result<String> {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = labscope(&args, None)?;
        anyhow::ensure!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        Ok(text(&out.stdout))
    };
    let whole: serde_json::Value = serde_json::from_str(&run(&["--output", "json"])?)?;
    let routes = |v: &serde_json::Value| -> Vec<String> {
        v["routes"]
            .as_array()
            .map(|a| a.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    };
    let expected = routes(&whole);
    assert!(
        expected.len() >= 2,
        "the local table has several routes: {whole}"
    );
    let lines = run(&["limit=1", "--all", "--output", "json"])?;
    let pages: Vec<serde_json::Value> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(pages.len(), expected.len(), "one route per page:\n{lines}");
    assert!(pages.last().is_some_and(|p| p.get("nextCursor").is_none()));
    let paged: Vec<String> = pages.iter().flat_map(routes).collect();
    assert_eq!(paged, expected);
    // Without limit=, the largest page the tool allows: one page here.
    let one = run(&["--all", "--output", "json"])?;
    assert_eq!(one.lines().count(), 1, "{one}");
    // Text: no "more: cursor=" lines, every route printed once.
    let table = run(&["limit=1", "--all"])?;
    assert!(!table.contains("more: cursor="), "{table}");
    let single = run(&[])?;
    let route_lines = |t: &str| {
        let mut l: Vec<String> = t
            .lines()
            .filter(|l| l.starts_with("  "))
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    assert_eq!(route_lines(&table), route_lines(&single));
    // Only paged tools.
    let out = labscope(&["call", "list_nodes", "--all"], None)?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not paged"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

/// `--output json` is written straight from the tool's result, without the
/// `serde_json::Value` tree MCP needs: value for value, it is the
/// `structuredContent` that `labscope serve` answers to the same call, and
/// with `--all` each line is one page's.
#[tokio::test]
async fn json_output_is_the_structured_content() -> anyhow::Result<()> {
    use labscope_tests::mcp::{Aggregator, KeepAlive};
    let host = labscope::config::hostname();
    let node = format!("node={host}");
    let args = [
        "call",
        "get_node_networking",
        node.as_str(),
        "sections=routes,rules",
        "table=local",
        "--output",
        "json",
    ];
    let out = labscope(&args, None)?;
    anyhow::ensure!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    // One object on one line, for pipes; --pretty spreads it for people.
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let pretty = labscope(&[&args[..], &["--pretty"]].concat(), None)?;
    assert!(text(&pretty.stdout).lines().count() > 1);
    let again: serde_json::Value = serde_json::from_slice(&pretty.stdout)?;
    assert_eq!(again["counts"], cli["counts"]);
    let all = labscope(&[&args[..], &["limit=1", "--all"]].concat(), None)?;
    anyhow::ensure!(all.status.success(), "--all: {}", text(&all.stderr));
    let cli_pages: Vec<serde_json::Value> = text(&all.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;

    let server = Aggregator::start(None, &[], &[])?;
    let mut mcp = KeepAlive::connect(&server.addr).await?;
    let mcp_args =
        serde_json::json!({"node": host, "sections": ["routes", "rules"], "table": "local"});
    let r = mcp.call("get_node_networking", mcp_args.clone()).await?;
    assert!(
        cli["routes"].as_array().is_some_and(|r| !r.is_empty()),
        "{cli}"
    );
    assert_eq!(
        r["structuredContent"], cli,
        "CLI JSON vs MCP structuredContent"
    );

    let mut paged_args = mcp_args;
    paged_args["limit"] = 1.into();
    let mcp_pages = mcp.pages("get_node_networking", paged_args).await?;
    // The cursor tokens name the same positions; compare the pages without them.
    let strip = |mut p: serde_json::Value| {
        p.as_object_mut().map(|o| o.remove("nextCursor"));
        p
    };
    assert_eq!(
        cli_pages.into_iter().map(strip).collect::<Vec<_>>(),
        mcp_pages.into_iter().map(strip).collect::<Vec<_>>(),
        "--all --output json lines vs MCP pages"
    );
    Ok(())
}

/// `labscope … | head -1`: once the reader has gone, the CLI ends quietly
/// and successfully (no "Broken pipe" error, no panic), for the tool
/// listing and for a call's table and JSON. Here the reader is gone before
/// the first write, so every write fails, whatever the output's size.
#[test]
fn a_closed_pipe_ends_the_cli_quietly() -> anyhow::Result<()> {
    use std::process::Stdio;
    let node = format!("node={}", labscope::config::hostname());
    for args in [
        vec!["tools", "--json"],
        vec!["tools"],
        vec!["call", "get_node_networking", node.as_str()],
        vec![
            "call",
            "get_node_networking",
            node.as_str(),
            "--output",
            "json",
        ],
        vec!["call", "get_node_networking", node.as_str(), "--help"],
    ] {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        drop(read);
        let out = Command::new(workspace_binary("labscope")?)
            .args(&args)
            .env("RUST_LOG", "off")
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()?;
        assert!(
            out.status.success(),
            "{args:?}: {:?}, stderr: {}",
            out.status,
            text(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: stderr: {}",
            text(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn an_empty_or_malformed_allowed_host_is_a_usage_error() -> anyhow::Result<()> {
    // What an install with LABSCOPE_HOST unset renders: refused at start-up
    // with the setting named, not a server that matches no client.
    for (arg, says) in [
        ("--allowed-host=", "LABSCOPE_HOST"),
        (
            "--allowed-host=https://labscope.lab.example/mcp",
            "no scheme, no path",
        ),
    ] {
        // A server that starts anyway would never exit: bounded.
        let mut child = Command::new(workspace_binary("labscope")?)
            .args(["serve", "--http", "127.0.0.1:0", arg])
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait()?.is_none() {
            if std::time::Instant::now() > deadline {
                child.kill()?;
                panic!("{arg}: the server started instead of refusing the argument");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(2), "{arg}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("--allowed-host") && err.contains(says),
            "{arg}: {err}"
        );
    }
    Ok(())
}

/// One set of habits: exit 2 for every usage error and 1 for a tool's
/// failure, `labscope` in the usage line, "did you mean" for near misses,
/// one line per error with each cause said once, plain logs off a terminal.
#[test]
fn usage_errors_exit_2_and_say_what_was_meant() -> anyhow::Result<()> {
    let tool = labscope(&["call", "list_node"], None)?;
    assert_eq!(tool.status.code(), Some(2));
    assert!(
        text(&tool.stderr).contains("did you mean \"list_nodes\"?"),
        "{}",
        text(&tool.stderr)
    );
    let tools = labscope(&["tools", "get_iptable_rules"], None)?;
    assert_eq!(tools.status.code(), Some(2));
    assert!(text(&tools.stderr).contains("did you mean \"get_iptables_rules\"?"));

    let arg = labscope(&["call", "list_nodes", "nodee=x"], None)?;
    assert_eq!(arg.status.code(), Some(2), "{}", text(&arg.stderr));
    let typo = labscope(&["call", "get_events", "limt=5"], None)?;
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        text(&typo.stderr).contains("did you mean \"limit\"?"),
        "{}",
        text(&typo.stderr)
    );
    let range = labscope(&["call", "get_events", "limit=0"], None)?;
    assert_eq!(range.status.code(), Some(2), "{}", text(&range.stderr));

    let bare = labscope(&["call"], None)?;
    assert_eq!(bare.status.code(), Some(2));
    let usage = text(&bare.stderr);
    assert!(usage.contains("Usage: labscope call "), "{usage}");
    let clap = labscope(&["call", "list_nodes", "--bogus"], None)?;
    assert_eq!(clap.status.code(), Some(2));
    assert!(text(&clap.stderr).contains("Usage: labscope call"));

    // A tool that fails (no Kubernetes API here) exits 1.
    let failed = labscope(&["call", "get_events"], None)?;
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));

    // One line, each cause once.
    let kc = labscope(
        &[
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "call",
            "get_events",
        ],
        None,
    )?;
    let err = text(&kc.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(
        err.starts_with("labscope: kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );

    // Logs to a pipe carry no colour codes.
    let logs = std::process::Command::new(workspace_binary("labscope")?)
        .args(["call", "list_nodes"])
        .env("RUST_LOG", "debug")
        .output()?;
    let stderr = text(&logs.stderr);
    assert!(!stderr.is_empty() && !stderr.contains('\u{1b}'), "{stderr}");
    Ok(())
}

/// Through a pseudo-terminal (util-linux `script`): the listing is wrapped
/// to the terminal's width, logs are coloured for a person, and NO_COLOR
/// turns the colour off.
#[test]
fn on_a_terminal_output_is_wrapped_and_colour_follows_no_color() -> anyhow::Result<()> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIP: util-linux `script` is not installed; no pseudo-terminal (scripts/test installs it)"
        );
        return Ok(());
    }
    let bin = workspace_binary("labscope")?;
    let run = |cmd: &str, no_color: bool| -> anyhow::Result<String> {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", cmd, "/dev/null"])
            .env("RUST_LOG", "debug")
            .env("COLUMNS", "60")
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        Ok(text(&c.output()?.stdout))
    };
    let listing = run(&format!("{} tools", bin.display()), true)?;
    assert!(listing.contains("list_nodes"), "{listing}");
    for line in listing.lines() {
        let line = line.trim_end_matches('\r');
        assert!(
            line.chars().count() <= 60,
            "wider than the terminal: {line:?}"
        );
    }
    let coloured = run(&format!("{} call list_nodes", bin.display()), false)?;
    assert!(
        coloured.contains('\u{1b}'),
        "no colour on a terminal: {coloured}"
    );
    let plain = run(&format!("{} call list_nodes", bin.display()), true)?;
    assert!(!plain.contains("\u{1b}["), "NO_COLOR: {plain}");
    Ok(())
}

/// docs/tools.md is `labscope tools --markdown`: the reference a user reads
/// in the repository cannot drift from the registry. `LABSCOPE_BLESS=1`
/// rewrites it.
#[test]
fn the_tools_reference_in_docs_is_current() -> anyhow::Result<()> {
    let out = labscope(&["tools", "--markdown"], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fresh = text(&out.stdout);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tools.md");
    if std::env::var_os("LABSCOPE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh)?;
    }
    let saved = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        saved == fresh,
        "docs/tools.md is stale: run `cargo run -p labscope -- tools --markdown > docs/tools.md` \
         (or LABSCOPE_BLESS=1 cargo test -p labscope-tests --test cli)"
    );
    for name in labscope::tools::registry().iter().map(|t| t.name) {
        assert!(fresh.contains(&format!("### `{name}`")), "{name} missing");
    }
    assert!(fresh.contains("confirm_fallback"));
    Ok(())
}

/// `labscope config check`: a valid file prints the configuration in force
/// (defaults included, secrets by where they come from, never their value);
/// an invalid one exits 1 naming the key; no file is a usage error.
#[test]
fn config_check_shows_the_effective_configuration_without_secrets() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("jellyfin-key");
    std::fs::write(&key, "s3cret-value\n")?;
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[jellyfin]\nurl = \"http://jellyfin:8096\"\napi_key_file = \"{}\"\n[dns]\nservers = \"10.0.0.1,10.0.0.2\"\n",
            key.display()
        ),
    )?;
    let out = labscope(
        &["--config", &good.display().to_string(), "config", "check"],
        None,
    )?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for want in [
        ": valid",
        "[jellyfin] url = http://jellyfin:8096/; API key from file",
        "[pihole.primary] not configured",
        "[dns] servers = 10.0.0.1, 10.0.0.2; unbound_port = 5335",
        "[mutations] enabled = false",
    ] {
        assert!(shown.contains(want), "{want:?} missing from:\n{shown}");
    }
    assert!(!shown.contains("s3cret"), "a secret shown:\n{shown}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[jellyfin]\nurl = \"jellyfin\"\napi_key_file = \"/nonexistent\"\n",
    )?;
    let out = labscope(
        &["--config", &bad.display().to_string(), "config", "check"],
        None,
    )?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("jellyfin.url"),
        "{}",
        text(&out.stderr)
    );

    let none = std::process::Command::new(workspace_binary("labscope")?)
        .args(["config", "check"])
        .env_remove("LABSCOPE_CONFIG")
        .output()?;
    assert_eq!(none.status.code(), Some(2));
    Ok(())
}
