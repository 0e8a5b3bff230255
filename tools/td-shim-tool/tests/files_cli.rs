//! How `td-shim-tool` writes its outputs and reads its inputs: no planted temporary file is
//! followed or removed, a FIFO or device given as output is written in place, an output error
//! is exit status 1 (never a panic), and every input is read with a bound.

mod common;

use common::{arg, artefacts, root, tool};
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eventlog() -> String {
    arg(&root().join("testdata/eventlogs/gotdx-ccel_data.dat"))
}

/// A fake agent of `len` pseudo-random bytes, which gzip cannot shrink (the initramfs takes any
/// file as the agent).
fn fake_agent(dir: &Path, len: usize) -> PathBuf {
    let path = dir.join("agent");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(&path, bytes).unwrap();
    path
}

/// The names the tool used for its temporary file: `<out>.tmp`, and `<out>` with its
/// extension replaced by `tmp`.
fn old_tmp_names(out: &Path) -> [PathBuf; 2] {
    let mut appended = out.as_os_str().to_owned();
    appended.push(".tmp");
    [PathBuf::from(appended), out.with_extension("tmp")]
}

/// Every command that writes a file, writing to `out` (named `out.bin`-style, so that both old
/// temporary names differ from it).
fn writers(dir: &Path) -> Vec<(String, Vec<String>, PathBuf)> {
    let a = artefacts();
    let agent = fake_agent(dir, 100);
    let boot = |extra: &[String]| {
        let mut v: Vec<String> = [
            "--image",
            &arg(&a.image),
            "--memory",
            "256M",
            "--vcpus",
            "1",
        ]
        .map(str::to_owned)
        .to_vec();
        v.extend_from_slice(extra);
        v
    };
    let out = |name: &str| dir.join(name);
    let mut all = Vec::new();
    let o = out("initramfs.cpio.gz");
    all.push((
        "initramfs -o".to_owned(),
        ["initramfs", "--agent", &arg(&agent), "-o", &arg(&o)]
            .map(str::to_owned)
            .to_vec(),
        o,
    ));
    let o = out("image.bin");
    all.push((
        "build -o".to_owned(),
        [
            "build",
            "--firmware",
            &arg(&a.firmware),
            "--payload",
            &arg(&a.payload),
            "-o",
            &arg(&o),
        ]
        .map(str::to_owned)
        .to_vec(),
        o,
    ));
    let o = out("expected.log");
    let mut args = vec!["measure".to_owned()];
    args.extend(boot(&["--log-out".to_owned(), arg(&o)]));
    all.push(("measure --log-out".to_owned(), args, o));
    let o = out("refvals.json");
    let mut args = vec!["refvals".to_owned()];
    args.extend(boot(&["-o".to_owned(), arg(&o)]));
    all.push(("refvals -o".to_owned(), args, o));
    let o = out("policy.rego");
    let mut args = vec!["refvals".to_owned()];
    args.extend(boot(&["--policy".to_owned(), arg(&o)]));
    all.push(("refvals --policy".to_owned(), args, o));
    all
}

#[test]
fn a_symlink_planted_at_the_old_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    for (what, args, out) in writers(dir.path()) {
        for tmp in old_tmp_names(&out) {
            std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        }
        let result = tool(&args);
        assert_eq!(result.status.code(), Some(0), "{what}: {}", stderr(&result));
        assert_eq!(fs::read(&victim).unwrap(), b"precious", "{what}");
        for tmp in old_tmp_names(&out) {
            assert_eq!(fs::read_link(&tmp).unwrap(), victim, "{what}");
            fs::remove_file(&tmp).unwrap();
        }
        let meta = fs::symlink_metadata(&out).unwrap();
        assert!(meta.is_file(), "{what}");
        assert!(meta.len() > 0, "{what}");
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(names.is_empty(), "{what}: {names:?}");
    }
}

#[test]
fn an_existing_file_at_the_old_temporary_name_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (what, args, out) in writers(dir.path()) {
        for tmp in old_tmp_names(&out) {
            fs::write(&tmp, b"mine").unwrap();
        }
        let result = tool(&args);
        assert_eq!(result.status.code(), Some(0), "{what}: {}", stderr(&result));
        for tmp in old_tmp_names(&out) {
            assert_eq!(
                fs::read(&tmp).unwrap(),
                b"mine",
                "{what}: {}",
                tmp.display()
            );
        }
        assert!(fs::metadata(&out).unwrap().len() > 4, "{what}");
    }
}

#[test]
fn an_output_that_is_a_fifo_is_written_into_and_stays_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than a pipe's buffer: the reader must run while the tool writes.
    let agent = fake_agent(dir.path(), 1 << 20);
    let regular = dir.path().join("regular.cpio.gz");
    let fifo = dir.path().join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let (sender, received) = std::sync::mpsc::channel();
    let reader_path = fifo.clone();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = fs::File::open(&reader_path).and_then(|mut f| f.read_to_end(&mut bytes));
        let _ = sender.send(result.map(|_| bytes));
    });
    let out = tool(&["initramfs", "--agent", &arg(&agent), "-o", &arg(&fifo)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let read = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the tool never wrote into the FIFO")
        .unwrap();
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // The same bytes as written to a regular file.
    let out = tool(&["initramfs", "--agent", &arg(&agent), "-o", &arg(&regular)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = fs::read(&regular).unwrap();
    assert!(expected.len() > 1 << 16);
    assert_eq!(read, expected);
}

#[test]
fn an_output_that_is_a_character_device_is_written_in_place() {
    // `-o /proc/self/fd/1` with standard output on /dev/null: the output is /dev/null, reached
    // through a link the tool cannot create a file next to.
    let dir = tempfile::tempdir().unwrap();
    let agent = fake_agent(dir.path(), 100);
    let null = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let before = fs::metadata("/dev/null").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
        .args([
            "initramfs",
            "--agent",
            &arg(&agent),
            "-o",
            "/proc/self/fd/1",
        ])
        .stdout(null)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = fs::metadata("/dev/null").unwrap();
    assert!(after.file_type().is_char_device());
    assert_eq!((after.ino(), after.rdev()), (before.ino(), before.rdev()));
    // With standard output a pipe, the archive arrives through it.
    let out = Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
        .args([
            "initramfs",
            "--agent",
            &arg(&agent),
            "-o",
            "/proc/self/fd/1",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout[..2], [0x1f, 0x8b], "a gzip stream");
}

#[test]
fn a_full_disk_on_standard_output_is_status_1_with_a_message() {
    let log = eventlog();
    for args in [
        vec!["eventlog", "dump", &log],
        vec!["eventlog", "dump", &log, "--json"],
        vec!["eventlog", "replay", &log],
    ] {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
            .args(&args)
            .stdout(full)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains("cannot write to standard output: No space left on device"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_closed_pipe_on_standard_output_is_status_1_without_a_message() {
    let log = eventlog();
    for args in [
        vec!["eventlog", "dump", &log],
        vec!["eventlog", "replay", &log, "--json"],
        vec!["eventlog", "diff", &log, &log],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}

/// Runs the tool under a 4 GiB address-space limit and kills it after 20 s (an unbounded read
/// of /dev/zero would otherwise take the machine's memory or never end). Returns the exit code
/// (`None` if killed by a signal), standard error and how long it ran.
fn run_limited(args: &[String]) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_td-shim-tool"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut pipe = child.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let _ = pipe.read_to_string(&mut err);
        err
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    (status.code(), reading.join().unwrap(), elapsed)
}

#[test]
fn dev_zero_as_any_input_is_refused_quickly() {
    let a = artefacts();
    let dir = tempfile::tempdir().unwrap();
    let agent = arg(&fake_agent(dir.path(), 100));
    let out = arg(&dir.path().join("out"));
    let log = eventlog();
    let (kernel, firmware, payload) = (arg(&a.kernel), arg(&a.firmware), arg(&a.payload));
    let zero = "/dev/zero";
    let boot = ["--memory", "512M", "--vcpus", "1"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["eventlog", "dump", zero], "event log"),
        (vec!["eventlog", "replay", zero], "event log"),
        (vec!["eventlog", "replay", &log, "--quote", zero], "quote"),
        (vec!["eventlog", "diff", zero, &log], "event log"),
        (vec!["eventlog", "diff", &log, zero], "event log"),
        (vec!["inspect", zero], "firmware image"),
        (vec!["measure", "--kernel", zero], "kernel"),
        (
            vec!["measure", "--kernel", &kernel, "--initrd", zero],
            "initrd",
        ),
        (vec!["measure", "--image", zero], "td-shim image"),
        (vec!["refvals", "--kernel", zero], "kernel"),
        (
            vec!["refvals", "--kernel", &kernel, "--initrd", zero],
            "initrd",
        ),
        (vec!["refvals", "--image", zero], "td-shim image"),
        (
            vec![
                "build",
                "--firmware",
                zero,
                "--payload",
                &payload,
                "-o",
                &out,
            ],
            "firmware ELF",
        ),
        (
            vec![
                "build",
                "--firmware",
                &firmware,
                "--payload",
                zero,
                "-o",
                &out,
            ],
            "payload",
        ),
        (
            vec![
                "build",
                "--firmware",
                &firmware,
                "--kernel",
                zero,
                "-o",
                &out,
            ],
            "payload",
        ),
        (
            vec![
                "build",
                "--firmware",
                &firmware,
                "--kernel",
                &kernel,
                "--initrd",
                zero,
                "-o",
                &out,
            ],
            "payload",
        ),
        (vec!["initramfs", "--agent", zero, "-o", &out], "the agent"),
        (
            vec![
                "initramfs",
                "--agent",
                &agent,
                "--file",
                "/dev/zero:/zero",
                "-o",
                &out,
            ],
            "extra file",
        ),
    ];
    for (mut args, what) in cases {
        if matches!(args[0], "measure" | "refvals") {
            args.extend_from_slice(&boot);
        }
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let (code, err, elapsed) = run_limited(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(elapsed < Duration::from_secs(10), "{args:?}: {elapsed:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("/dev/zero"), "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
        assert!(
            err.contains("is larger than") || err.contains("is not a regular file"),
            "{args:?}: {err}"
        );
    }
    assert!(!Path::new(&out).exists());
}
