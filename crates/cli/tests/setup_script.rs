//! `scripts/setup.sh`, which `make demo` and `make test` run first on a fresh machine: its
//! libclang detection must decide as bindgen's loader (clang-sys) does, so that a machine with
//! only Clang's C++ library (`libclang-cpp.so.14`, shipped by Debian's LLVM runtime) gets
//! `libclang-dev` installed instead of a failed build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup.sh").canonicalize().unwrap()
}

/// What `setup.sh --dry-run build` says it would install, with `LIBCLANG_PATH` set to `libclang_path`
/// (clang-sys searches only there when it is set, and so does the script).
fn dry_run(libclang_path: &Path) -> String {
    let out = Command::new("bash")
        .arg(setup_script())
        .args(["--dry-run", "build"])
        .env("LIBCLANG_PATH", libclang_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wants_libclang(said: &str) -> bool {
    said.lines().any(|l| l.starts_with("migsafe setup: would install libclang-dev:"))
}

/// A shared object of this machine's word size to stand in under a library's name: the real
/// libclang when this machine has it (the build needs it, so `make test` installed it), else this
/// test's own ELF executable (clang-sys checks the ELF header, not the contents).
fn real_libclang() -> PathBuf {
    let mut found = None;
    for entry in std::fs::read_dir("/usr/lib").unwrap().flatten() {
        let candidate = entry.path().join("lib/libclang.so.1");
        if entry.file_name().to_string_lossy().starts_with("llvm-") && candidate.exists() {
            found = Some(candidate);
        }
    }
    found.unwrap_or_else(|| std::env::current_exe().unwrap())
}

#[test]
fn only_libclang_cpp_is_not_libclang() {
    let dir = tempfile::tempdir().unwrap();
    // The very file that fooled the old check: the C++ interface library, a real shared object.
    std::fs::copy(real_libclang(), dir.path().join("libclang-cpp.so.14")).unwrap();
    let said = dry_run(dir.path());
    assert!(wants_libclang(&said), "a folder holding only libclang-cpp.so.14 must not count as libclang:\n{said}");
}

#[test]
fn a_real_libclang_so_1_is_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(real_libclang(), dir.path().join("libclang-cpp.so.14")).unwrap();
    std::fs::copy(real_libclang(), dir.path().join("libclang.so.1")).unwrap();
    let said = dry_run(dir.path());
    assert!(!wants_libclang(&said), "libclang.so.1 is what bindgen loads:\n{said}");
    // LIBCLANG_PATH may also name the library itself.
    assert!(!wants_libclang(&dry_run(&dir.path().join("libclang.so.1"))));
}

#[test]
fn versioned_names_count_and_non_libraries_do_not() {
    let dir = tempfile::tempdir().unwrap();
    // A file with the right name that is not a shared object (a leftover text file, a broken
    // download) is not loadable, so it is not libclang either.
    std::fs::write(dir.path().join("libclang.so.1"), "not a library\n").unwrap();
    assert!(wants_libclang(&dry_run(dir.path())));
    // Debian's versioned names (libclang-14.so.1, libclang-14.so) are what clang-sys accepts.
    let versioned = tempfile::tempdir().unwrap();
    std::fs::copy(real_libclang(), versioned.path().join("libclang-14.so.1")).unwrap();
    assert!(!wants_libclang(&dry_run(versioned.path())));
    // An empty folder has nothing.
    let empty = tempfile::tempdir().unwrap();
    assert!(wants_libclang(&dry_run(empty.path())));
}

#[test]
fn an_unknown_purpose_is_a_usage_error() {
    let out = Command::new("bash").arg(setup_script()).arg("deploy").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
