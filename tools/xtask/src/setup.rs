//! Installs what the commands need: the Rust toolchain pinned in rust-toolchain.toml with its
//! targets and components (through rustup), and QEMU (Debian's `qemu-system-x86`, through apt
//! when running as root, never removing a package).

mod apt;

use crate::qemu::QEMU;
use crate::util::{have, output, root, run, TARGET};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// What rust-toolchain.toml pins.
#[derive(Debug, PartialEq, Eq)]
struct Pinned {
    /// `toolchain.channel` (`1.95.0`).
    channel: String,
    /// `toolchain.targets`, plus the firmware target whatever the file says.
    targets: Vec<String>,
    /// `toolchain.components`.
    components: Vec<String>,
}

/// Reads the `[toolchain]` table of rust-toolchain.toml.
fn parse_pinned(text: &str) -> Result<Pinned> {
    let doc: toml_edit::DocumentMut = text.parse().context("not valid TOML")?;
    let toolchain = doc
        .get("toolchain")
        .and_then(|t| t.as_table_like())
        .context("no [toolchain] table")?;
    let channel = toolchain
        .get("channel")
        .and_then(|c| c.as_str())
        .context("no toolchain.channel string")?
        .to_string();
    let list = |key: &str| -> Result<Vec<String>> {
        let Some(item) = toolchain.get(key) else {
            return Ok(Vec::new());
        };
        item.as_array()
            .with_context(|| format!("toolchain.{key} is not an array"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .with_context(|| format!("toolchain.{key} holds a non-string"))
            })
            .collect()
    };
    let mut targets = list("targets")?;
    if !targets.iter().any(|t| t == TARGET) {
        targets.push(TARGET.to_string());
    }
    Ok(Pinned {
        channel,
        targets,
        components: list("components")?,
    })
}

/// The items of `wanted` missing from a `rustup target|component list --installed` listing.
/// Targets are listed by their triple; components by name, followed by `-HOST` when they are
/// built for a host (`rustfmt-x86_64-unknown-linux-gnu`) and alone when they are not
/// (`rust-src`).
fn missing<'a>(wanted: &'a [String], listing: &str, host: &str) -> Vec<&'a str> {
    wanted
        .iter()
        .map(String::as_str)
        .filter(|w| {
            let with_host = format!("{w}-{host}");
            !listing
                .lines()
                .map(str::trim)
                .any(|l| l == *w || l == with_host)
        })
        .collect()
}

/// `rustup ARGS`'s standard output, or `None` if rustup is missing or fails.
fn rustup(args: &[&str]) -> Option<String> {
    output(Command::new("rustup").current_dir(root()).args(args))
}

/// Whether the `rustc` on PATH has the firmware target (for a toolchain not managed by rustup).
fn sysroot_has_target() -> bool {
    output(
        Command::new("rustc")
            .current_dir(root())
            .args(["--print", "sysroot"]),
    )
    .map(|s| PathBuf::from(s.trim()).join("lib/rustlib").join(TARGET))
    .is_some_and(|p| p.exists())
}

/// Installs the toolchain of rust-toolchain.toml if it is missing, then adds its targets and
/// components if they are missing: `rustup toolchain install` does not add them to a toolchain
/// that is already installed, and without x86_64-unknown-none the firmware build fails with
/// "can't find crate for `core`". Does nothing when everything is there.
pub fn ensure_toolchain() -> Result<()> {
    let file = root().join("rust-toolchain.toml");
    let pinned = std::fs::read_to_string(&file)
        .context("cannot read it")
        .and_then(|text| parse_pinned(&text))
        .with_context(|| format!("{}", file.display()))?;
    let channel = pinned.channel.as_str();
    let Some(show) = rustup(&["show"]) else {
        // No rustup: a toolchain installed some other way will do if it has the target.
        if sysroot_has_target() {
            return Ok(());
        }
        bail!(
            "rustup is not on PATH and the Rust toolchain has no {TARGET} target: install rustup \
             (https://rustup.rs), or Rust {channel} with the target {TARGET}"
        );
    };
    let host = show
        .lines()
        .find_map(|l| l.strip_prefix("Default host:"))
        .map(str::trim)
        .context("`rustup show` names no default host")?;
    let full_name = format!("{channel}-{host}");
    let toolchains = rustup(&["toolchain", "list"]).context("`rustup toolchain list` failed")?;
    if !toolchains
        .lines()
        .any(|l| l.split_whitespace().next() == Some(full_name.as_str()))
    {
        // With no name, `rustup toolchain install` reads rust-toolchain.toml.
        run(Command::new("rustup")
            .current_dir(root())
            .args(["toolchain", "install"]))
        .context("installing the toolchain of rust-toolchain.toml (is rustup on PATH?)")?;
    }
    let targets = rustup(&["target", "list", "--installed", "--toolchain", channel])
        .context("`rustup target list` failed")?;
    let targets = missing(&pinned.targets, &targets, host);
    if !targets.is_empty() {
        run(Command::new("rustup")
            .args(["target", "add", "--toolchain", channel])
            .args(&targets))?;
    }
    let components = rustup(&["component", "list", "--installed", "--toolchain", channel])
        .context("`rustup component list` failed")?;
    let components = missing(&pinned.components, &components, host);
    if !components.is_empty() {
        run(Command::new("rustup")
            .args(["component", "add", "--toolchain", channel])
            .args(&components))?;
    }
    Ok(())
}

/// The Debian package that ships [`QEMU`].
const QEMU_PACKAGE: &str = "qemu-system-x86";

fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

/// Makes sure QEMU is installed. As root, installs `qemu-system-x86` with apt-get after a
/// simulation shows it removes nothing (see [`choose_release`]); otherwise stops and names the
/// package.
pub fn ensure_qemu() -> Result<()> {
    if have(QEMU, "--version") {
        return Ok(());
    }
    if !running_as_root() {
        bail!("{QEMU} is missing: install Debian's package {QEMU_PACKAGE} (sudo apt-get install {QEMU_PACKAGE})");
    }
    run(Command::new("apt-get").args(["update", "-q"]))?;
    let release = choose_release(&simulate_install, &|| {
        output(
            Command::new("apt-cache")
                .args(["policy", QEMU_PACKAGE])
                .env("LC_ALL", "C"),
        )
        .context("`apt-cache policy` failed")
    })?;
    let mut install = Command::new("apt-get");
    install.args([
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--no-remove",
    ]);
    match &release {
        Some(release) => {
            eprintln!("xtask: installing {QEMU_PACKAGE} from {release} with apt-get");
            install.args(["-t", release]);
        }
        None => eprintln!("xtask: installing {QEMU_PACKAGE} with apt-get"),
    }
    run(install
        .arg(QEMU_PACKAGE)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if !have(QEMU, "--version") {
        bail!("{QEMU} is still missing after installing {QEMU_PACKAGE}");
    }
    Ok(())
}

/// The Debian package that ships `openssl`, the independent ECDSA implementation the secure-boot
/// tests sign and verify with.
const OPENSSL_PACKAGE: &str = "openssl";

/// Makes sure the `openssl` command is installed: as root with apt-get (a package with no
/// conflicts; `--no-remove` all the same), otherwise stops and names the package.
pub fn ensure_openssl() -> Result<()> {
    if have("openssl", "version") {
        return Ok(());
    }
    if !running_as_root() {
        bail!("openssl is missing: install Debian's package {OPENSSL_PACKAGE} (sudo apt-get install {OPENSSL_PACKAGE})");
    }
    eprintln!("xtask: installing {OPENSSL_PACKAGE} with apt-get");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "--no-remove",
            OPENSSL_PACKAGE,
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if !have("openssl", "version") {
        bail!("openssl is still missing after installing {OPENSSL_PACKAGE}");
    }
    Ok(())
}

/// The output of `apt-get install -s` for [`QEMU_PACKAGE`], from `release` if given: what apt
/// would do, without doing it.
fn simulate_install(release: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-s", "--no-install-recommends"]);
    if let Some(release) = release {
        cmd.args(["-t", release]);
    }
    cmd.arg(QEMU_PACKAGE).env("LC_ALL", "C");
    eprintln!("xtask: running {cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn names(packages: &[apt::Package]) -> String {
    packages
        .iter()
        .map(|p| format!("{} ({})", p.name, p.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decides where [`QEMU_PACKAGE`] comes from, from apt's simulated plans: `None` for apt's own
/// choice if that removes nothing; else `Some(release)` for the first release (see
/// [`apt::alternative_releases`]) whose plan installs the package and removes nothing; else an
/// error that says what would be removed and how to proceed by hand. `simulate` runs
/// `apt-get install -s` (with `-t release` when given); `policy` runs `apt-cache policy`.
fn choose_release(
    simulate: &dyn Fn(Option<&str>) -> Result<String>,
    policy: &dyn Fn() -> Result<String>,
) -> Result<Option<String>> {
    let default = apt::parse_simulation(&simulate(None)?);
    if default.removals.is_empty() {
        return Ok(None);
    }
    let candidate = default
        .installs
        .iter()
        .find(|p| p.name == QEMU_PACKAGE)
        .map(|p| p.version.as_str());
    let versions = apt::parse_policy(&policy()?);
    let mut tried = Vec::new();
    for release in apt::alternative_releases(&versions, candidate, &default.removals) {
        match simulate(Some(&release)) {
            Ok(text) => {
                let plan = apt::parse_simulation(&text);
                let installs = plan.installs.iter().any(|p| p.name == QEMU_PACKAGE);
                if plan.removals.is_empty() && installs {
                    eprintln!(
                        "xtask: apt would remove {} to install {QEMU_PACKAGE} {}; from {release} \
                         it removes nothing",
                        names(&default.removals),
                        candidate.unwrap_or("(its candidate)")
                    );
                    return Ok(Some(release));
                }
                tried.push(if installs {
                    format!("from {release} it would remove {}", names(&plan.removals))
                } else {
                    format!("from {release} it would not install {QEMU_PACKAGE}")
                });
            }
            Err(e) => tried.push(format!("from {release} apt refuses: {e:#}")),
        }
    }
    let tried = if tried.is_empty() {
        "No other release known to apt offers a newer version, or one in the version of those \
         packages."
            .to_string()
    } else {
        format!(
            "No other release does without removals: {}.",
            tried.join("; ")
        )
    };
    bail!(
        "not installing {QEMU_PACKAGE}: apt-get would remove {removed} to install it.\n\
         Those packages cannot stay at their version beside the {QEMU_PACKAGE} {candidate} that \
         apt picks, usually because they come from another release (such as backports). {tried}\n\
         xtask never removes a package. To go on by hand, either\n\
         \x20 - make apt offer {QEMU_PACKAGE} from the release those packages come from (add it to \
         /etc/apt/sources.list.d/, `apt-get update`), then `apt-get install -t RELEASE \
         --no-install-recommends {QEMU_PACKAGE}`;\n\
         \x20 - or accept the removal: `apt-get install --no-install-recommends {QEMU_PACKAGE}`;\n\
         \x20 - or put a {QEMU} of your own on PATH.",
        removed = names(&default.removals),
        candidate = candidate.unwrap_or("(candidate)"),
    )
}

/// The version of sev-snp-measure (VirTEE, Apache-2.0, the reference implementation of the SNP
/// launch digest) the differential test compares `td-shim-tool measure --platform snp` with.
pub const SEV_SNP_MEASURE_VERSION: &str = "0.0.13";

/// Where the oracle's venv lives; `tools/td-shim-tool/tests/snp_differential.rs` looks there.
pub fn sev_snp_measure_venv() -> PathBuf {
    root().join("target/sev-snp-measure-venv")
}

/// Installs sev-snp-measure at [`SEV_SNP_MEASURE_VERSION`] into [`sev_snp_measure_venv`] from
/// PyPI unless that exact version is there (`python3 -m venv`, then `pip install`).
pub fn ensure_sev_snp_measure() -> Result<()> {
    let venv = sev_snp_measure_venv();
    let exe = venv.join("bin/sev-snp-measure");
    let wanted = format!("sev-snp-measure {SEV_SNP_MEASURE_VERSION}");
    let installed = output(Command::new(&exe).arg("--version"))
        .map(|v| v.trim() == wanted)
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing {wanted} into {}", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("removing the old venv {}", venv.display()))?;
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("creating a Python venv (python3 with the venv module is needed)")?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("sev-snp-measure=={SEV_SNP_MEASURE_VERSION}"),
    ]))
    .context("installing sev-snp-measure from PyPI")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLCHAIN_FILE: &str = r#"[toolchain]
channel = "1.95.0"
targets = ["x86_64-unknown-none"]
components = ["rustfmt", "clippy"]
profile = "minimal"
"#;

    #[test]
    fn the_pinned_toolchain_is_read_from_the_file() {
        assert_eq!(
            parse_pinned(TOOLCHAIN_FILE).unwrap(),
            Pinned {
                channel: "1.95.0".into(),
                targets: vec!["x86_64-unknown-none".into()],
                components: vec!["rustfmt".into(), "clippy".into()],
            }
        );
        // The workspace's own file parses and pins the firmware target.
        let ours = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
        assert!(parse_pinned(&ours)
            .unwrap()
            .targets
            .contains(&TARGET.to_string()));
    }

    #[test]
    fn the_firmware_target_is_wanted_even_if_the_file_forgets_it() {
        let pinned = parse_pinned("[toolchain]\nchannel = \"stable\"\n").unwrap();
        assert_eq!(pinned.targets, [TARGET]);
        assert!(pinned.components.is_empty());
    }

    #[test]
    fn a_file_without_a_channel_is_refused() {
        assert!(parse_pinned("[toolchain]\ntargets = []\n").is_err());
        assert!(parse_pinned("channel = \"1.95.0\"\n").is_err());
        assert!(parse_pinned("[toolchain]\nchannel = \"1.95.0\"\ntargets = \"x\"\n").is_err());
        assert!(parse_pinned("[toolchain\n").is_err());
    }

    const HOST: &str = "x86_64-unknown-linux-gnu";

    #[test]
    fn missing_targets_and_components_are_found_in_rustup_listings() {
        let pinned = parse_pinned(TOOLCHAIN_FILE).unwrap();
        // A toolchain installed before the target was pinned.
        assert_eq!(
            missing(&pinned.targets, "x86_64-unknown-linux-gnu\n", HOST),
            ["x86_64-unknown-none"]
        );
        assert!(missing(
            &pinned.targets,
            "x86_64-unknown-linux-gnu\nx86_64-unknown-none\n",
            HOST
        )
        .is_empty());
        let components = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                          rust-std-x86_64-unknown-linux-gnu\nrustc-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing(&pinned.components, components, HOST), ["rustfmt"]);
        let all = format!("{components}rustfmt-x86_64-unknown-linux-gnu\n");
        assert!(missing(&pinned.components, &all, HOST).is_empty());
        // A host-independent component is listed bare; a prefix is not a match.
        let src = ["rust-src".to_string(), "rust".to_string()];
        assert_eq!(
            missing(&src, "rust-src\nrust-std-x86_64-unknown-linux-gnu\n", HOST),
            ["rust"]
        );
    }

    const DEFAULT_REMOVES: &str = "\
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst qemu-system-common (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
";

    const BACKPORTS_CLEAN: &str = "\
Inst qemu-system-common (1:10.0.2+ds-2+deb13u1~bpo12+1 Debian Backports:stable-backports [amd64])
Inst qemu-system-x86 (1:10.0.2+ds-2+deb13u1~bpo12+1 Debian Backports:stable-backports [amd64])
";

    const POLICY: &str = "\
qemu-system-x86:
  Installed: (none)
  Candidate: 1:7.2+dfsg-7+deb12u7
  Version table:
     1:10.0.2+ds-2+deb13u1~bpo12+1 100
        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
     1:7.2+dfsg-7+deb12u7 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";

    fn plans(
        default: &'static str,
        backports: &'static str,
    ) -> impl Fn(Option<&str>) -> Result<String> {
        move |release| match release {
            None => Ok(default.to_string()),
            Some("bookworm-backports") => Ok(backports.to_string()),
            Some(other) => bail!("no plan for {other}"),
        }
    }

    #[test]
    fn apt_own_choice_is_kept_when_it_removes_nothing() {
        let clean = "Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])\n";
        let policy = || -> Result<String> { panic!("the policy is not needed") };
        assert_eq!(choose_release(&plans(clean, ""), &policy).unwrap(), None);
    }

    #[test]
    fn backports_is_chosen_when_it_keeps_qemu_utils() {
        let policy = || Ok(POLICY.to_string());
        assert_eq!(
            choose_release(&plans(DEFAULT_REMOVES, BACKPORTS_CLEAN), &policy).unwrap(),
            Some("bookworm-backports".to_string())
        );
    }

    #[test]
    fn a_removal_everywhere_is_refused_with_the_packages_named() {
        let policy = || Ok(POLICY.to_string());
        let err = choose_release(&plans(DEFAULT_REMOVES, DEFAULT_REMOVES), &policy)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("would remove qemu-utils (1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            "{err}"
        );
        assert!(
            err.contains("from bookworm-backports it would remove"),
            "{err}"
        );
        assert!(err.contains("apt-get install -t RELEASE"), "{err}");
    }

    #[test]
    fn a_removal_without_another_release_is_refused() {
        let only_bookworm =
            "qemu-system-x86:\n  Version table:\n     1:7.2+dfsg-7+deb12u7 500\n        \
                             500 http://deb.debian.org/debian bookworm/main amd64 Packages\n";
        // apt-cache prints nothing for a package no release offers.
        for policy in ["", only_bookworm] {
            let err = choose_release(&plans(DEFAULT_REMOVES, BACKPORTS_CLEAN), &|| {
                Ok(policy.to_string())
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("qemu-utils"), "{err}");
            assert!(err.contains("No other release known to apt"), "{err}");
        }
    }
}
