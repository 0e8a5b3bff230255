//! What apt would do, read from its own output: the plan of `apt-get install -s` (simulation) and
//! the version table of `apt-cache policy`. Installing QEMU must never remove a package the user
//! has, so xtask reads the plan before it installs anything.

/// A package and a version, as apt prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name (`qemu-utils`).
    pub name: String,
    /// Its version (`1:10.0.2+ds-2+deb13u1~bpo12+1`): the one installed for a removal, the new
    /// one for an install.
    pub version: String,
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// What `apt-get install -s` says it would do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `Inst` lines: new packages, upgrades and downgrades.
    pub installs: Vec<Package>,
    /// `Remv` and `Purg` lines: packages apt would take away.
    pub removals: Vec<Package>,
}

/// Parses the output of `apt-get install -s`. Its action lines are
///
/// ```text
/// Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
/// Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
/// Inst libfoo [1.0-1] (1.1-1 Debian:12.x/stable [amd64])
/// Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
/// ```
///
/// (an upgrade's `Inst` line has the old version in brackets before the new one). `Conf` lines and
/// everything that is not an action line (notes, summaries, package lists) are ignored: only the
/// action lines are stable across apt versions and languages.
pub fn parse_simulation(text: &str) -> Plan {
    let mut plan = Plan::default();
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        let (Some(action), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let rest = words.next().unwrap_or("").trim();
        match action {
            "Inst" => {
                // The new version is the first word inside the parentheses.
                let version = rest
                    .split_once('(')
                    .and_then(|(_, v)| v.split([' ', ')']).next())
                    .unwrap_or("");
                plan.installs.push(package(name, version));
            }
            "Remv" | "Purg" => {
                let version = rest
                    .strip_prefix('[')
                    .and_then(|v| v.split(']').next())
                    .unwrap_or("");
                plan.removals.push(package(name, version));
            }
            _ => {}
        }
    }
    plan
}

fn package(name: &str, version: &str) -> Package {
    Package {
        name: name.to_string(),
        version: version.to_string(),
    }
}

/// One version in the version table of `apt-cache policy PACKAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// The version.
    pub version: String,
    /// The releases that offer it, by the name `apt-get -t` takes (`bookworm-backports`); the
    /// dpkg status file is not a release and is left out.
    pub releases: Vec<String>,
}

/// Parses the version table of `apt-cache policy PACKAGE` (run with `LC_ALL=C`):
///
/// ```text
/// qemu-system-x86:
///   Installed: (none)
///   Candidate: 1:7.2+dfsg-7+deb12u7
///   Version table:
///      1:10.0.2+ds-2+deb13u1~bpo12+1 100
///         100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
///      1:7.2+dfsg-7+deb12u7 500
///         500 http://deb.debian.org/debian bookworm/main amd64 Packages
///  *** 1:7.2+dfsg-7+deb12u5 100
///         100 /var/lib/dpkg/status
/// ```
///
/// A version line has the version and its priority, marked `***` when installed; each line
/// under it names a source: its priority, its URI and `release/component`.
pub fn parse_policy(text: &str) -> Vec<PolicyVersion> {
    let mut versions: Vec<PolicyVersion> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "Version table:" {
            in_table = true;
            continue;
        }
        if !in_table || trimmed.is_empty() {
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let is_source = words.len() >= 2
            && words[0].bytes().all(|b| b.is_ascii_digit())
            && (words[1].starts_with('/') || words[1].contains(':'));
        if is_source {
            // `500 http://… bookworm/main amd64 Packages`; a flat repository has `./` instead.
            let release = words
                .get(2)
                .filter(|_| !words[1].starts_with('/'))
                .and_then(|dist| dist.split('/').next())
                .filter(|r| !r.is_empty() && *r != ".");
            if let (Some(release), Some(current)) = (release, versions.last_mut()) {
                if !current.releases.iter().any(|r| r == release) {
                    current.releases.push(release.to_string());
                }
            }
        } else {
            let version = words.iter().find(|w| **w != "***");
            match version {
                Some(v) => versions.push(PolicyVersion {
                    version: v.to_string(),
                    releases: Vec::new(),
                }),
                // A line that is neither: the table has ended.
                None => in_table = false,
            }
        }
    }
    versions
}

/// The releases worth asking apt for with `-t` when its default plan, which installs `candidate`,
/// would remove packages. First the releases that offer the package in the very version of a
/// package apt would remove: the usual case is a package from backports (`qemu-utils`) whose
/// siblings, built from the same source (`qemu-system-x86`), must come from backports too. Then
/// the releases that offer a version newer than the candidate (the policy lists versions newest
/// first). Older versions are never proposed otherwise.
pub fn alternative_releases(
    versions: &[PolicyVersion],
    candidate: Option<&str>,
    removals: &[Package],
) -> Vec<String> {
    let mut releases: Vec<String> = Vec::new();
    let mut add = |v: &PolicyVersion| {
        for release in &v.releases {
            if !releases.contains(release) {
                releases.push(release.clone());
            }
        }
    };
    let is_candidate = |v: &PolicyVersion| Some(v.version.as_str()) == candidate;
    versions
        .iter()
        .filter(|v| !is_candidate(v) && removals.iter().any(|r| r.version == v.version))
        .for_each(&mut add);
    versions
        .iter()
        .take_while(|v| !is_candidate(v))
        .for_each(&mut add);
    releases
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bookworm's apt printed for qemu-system-x86 with qemu-utils from bookworm-backports
    /// installed (abridged: the lists of suggested packages are shorter).
    const REMOVES_QEMU_UTILS: &str = "\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
Reading state information...
The following additional packages will be installed:
  ipxe-qemu qemu-system-common qemu-system-data
The following packages will be REMOVED:
  qemu-utils
The following NEW packages will be installed:
  ipxe-qemu qemu-system-common qemu-system-data qemu-system-x86
0 upgraded, 4 newly installed, 1 to remove and 0 not upgraded.
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst ipxe-qemu (1.0.0+git-20190125.36a4c85-5.1 Debian:12.x/stable [all])
Inst qemu-system-common (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
Inst qemu-system-data (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [all])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
Conf ipxe-qemu (1.0.0+git-20190125.36a4c85-5.1 Debian:12.x/stable [all])
Conf qemu-system-common (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
Conf qemu-system-data (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [all])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.x/stable [amd64])
";

    const POLICY_WITH_BACKPORTS: &str = "\
qemu-system-x86:
  Installed: (none)
  Candidate: 1:7.2+dfsg-7+deb12u7
  Version table:
     1:10.0.2+ds-2+deb13u1~bpo12+1 100
        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
     1:7.2+dfsg-7+deb12u7 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1:7.2+dfsg-7+deb12u5 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
";

    fn pkg(name: &str, version: &str) -> Package {
        package(name, version)
    }

    #[test]
    fn a_removal_and_the_installs_are_read_from_the_action_lines() {
        let plan = parse_simulation(REMOVES_QEMU_UTILS);
        assert_eq!(
            plan.removals,
            [pkg("qemu-utils", "1:10.0.2+ds-2+deb13u1~bpo12+1")]
        );
        assert_eq!(
            plan.installs,
            [
                pkg("ipxe-qemu", "1.0.0+git-20190125.36a4c85-5.1"),
                pkg("qemu-system-common", "1:7.2+dfsg-7+deb12u7"),
                pkg("qemu-system-data", "1:7.2+dfsg-7+deb12u7"),
                pkg("qemu-system-x86", "1:7.2+dfsg-7+deb12u7"),
            ]
        );
    }

    #[test]
    fn an_upgrade_gives_its_new_version_and_a_purge_is_a_removal() {
        let plan = parse_simulation(
            "Inst libfdt1 [1.6.1-4] (1.6.1-4+b1 Debian:12.x/stable [amd64])\n\
             Purg qemu-block-extra [1:10.0.2+ds-2+deb13u1~bpo12+1]\n\
             Conf libfdt1 (1.6.1-4+b1 Debian:12.x/stable [amd64])\n",
        );
        assert_eq!(plan.installs, [pkg("libfdt1", "1.6.1-4+b1")]);
        assert_eq!(
            plan.removals,
            [pkg("qemu-block-extra", "1:10.0.2+ds-2+deb13u1~bpo12+1")]
        );
    }

    #[test]
    fn nothing_to_do_and_noise_give_an_empty_plan() {
        let plan = parse_simulation(
            "Reading package lists...\n\
             qemu-system-x86 is already the newest version (1:7.2+dfsg-7+deb12u18+b3).\n\
             0 upgraded, 0 newly installed, 0 to remove and 137 not upgraded.\n\
             \n\
             Inst\n\
             The following packages will be REMOVED:\n  qemu-utils\n",
        );
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn a_backports_install_without_removals() {
        let plan = parse_simulation(
            "Inst qemu-system-common (1:10.0.2+ds-2+deb13u1~bpo12+1 Debian Backports:stable-backports [amd64])\n\
             Inst qemu-system-x86 (1:10.0.2+ds-2+deb13u1~bpo12+1 Debian Backports:stable-backports [amd64])\n",
        );
        assert!(plan.removals.is_empty());
        assert_eq!(
            plan.installs[1],
            pkg("qemu-system-x86", "1:10.0.2+ds-2+deb13u1~bpo12+1")
        );
    }

    #[test]
    fn the_policy_gives_each_version_with_its_releases() {
        let versions = parse_policy(POLICY_WITH_BACKPORTS);
        let summary: Vec<(&str, Vec<&str>)> = versions
            .iter()
            .map(|v| {
                (
                    v.version.as_str(),
                    v.releases.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("1:10.0.2+ds-2+deb13u1~bpo12+1", vec!["bookworm-backports"]),
                ("1:7.2+dfsg-7+deb12u7", vec!["bookworm"]),
                ("1:7.2+dfsg-7+deb12u5", vec!["bookworm-security"]),
            ]
        );
    }

    #[test]
    fn the_installed_version_and_the_status_file_are_read_right() {
        let versions = parse_policy(
            "qemu-system-x86:\n\
             \x20 Installed: 1:7.2+dfsg-7+deb12u18+b3\n\
             \x20 Candidate: 1:7.2+dfsg-7+deb12u18+b3\n\
             \x20 Version table:\n\
             \x20*** 1:7.2+dfsg-7+deb12u18+b3 500\n\
             \x20       500 http://deb.debian.org/debian bookworm/main amd64 Packages\n\
             \x20       100 /var/lib/dpkg/status\n\
             \x20    1:7.2+dfsg-7+deb12u15 500\n\
             \x20       500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n",
        );
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].version, "1:7.2+dfsg-7+deb12u18+b3");
        assert_eq!(versions[0].releases, ["bookworm"]);
        assert_eq!(versions[1].releases, ["bookworm-security"]);
    }

    #[test]
    fn a_package_apt_does_not_know_has_no_versions() {
        assert!(parse_policy("").is_empty());
        assert!(parse_policy(
            "qemu-system-x86:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n"
        )
        .is_empty());
    }

    #[test]
    fn the_release_matching_the_removed_version_is_tried_first() {
        let versions = parse_policy(POLICY_WITH_BACKPORTS);
        let candidate = Some("1:7.2+dfsg-7+deb12u7");
        let from_backports = [pkg("qemu-utils", "1:10.0.2+ds-2+deb13u1~bpo12+1")];
        assert_eq!(
            alternative_releases(&versions, candidate, &from_backports),
            ["bookworm-backports"]
        );
        // An older version is proposed only when a removed package has exactly that version.
        let from_security = [pkg("qemu-utils", "1:7.2+dfsg-7+deb12u5")];
        assert_eq!(
            alternative_releases(&versions, candidate, &from_security),
            ["bookworm-security", "bookworm-backports"]
        );
        let unrelated = [pkg("libslirp0", "4.7.0-1")];
        assert_eq!(
            alternative_releases(&versions, candidate, &unrelated),
            ["bookworm-backports"]
        );
    }

    #[test]
    fn no_newer_or_matching_version_leaves_nothing_to_try() {
        let versions = parse_policy(POLICY_WITH_BACKPORTS);
        let removals = [pkg("qemu-utils", "1:10.0.2+ds-2+deb13u1~bpo12+1")];
        assert!(
            alternative_releases(&versions[1..], Some("1:7.2+dfsg-7+deb12u7"), &removals)
                .is_empty()
        );
    }
}
