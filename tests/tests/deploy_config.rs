//! Build and deploy agree on the architecture (issue 20, items 1 and 3).
//!
//! `scripts/check-arch` is what `scripts/deploy` runs before `sam deploy`;
//! these tests hold it to its word: every environment of `samconfig.toml`
//! builds and deploys one architecture, a configuration that could disagree
//! is refused, and a bootstrap whose ELF machine is not the deployed
//! architecture is refused, on the real x86_64 binaries built here and on
//! synthetic arm64 headers (no arm64 build exists on these machines).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn check_arch(dir: &Path, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(root().join("scripts/check-arch"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("python3 runs scripts/check-arch")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn passes(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected success:\n{}",
        text(out)
    );
}

fn refuses(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal:\n{}",
        text(out)
    );
    assert!(
        text(out).contains(needle),
        "the refusal should say {needle:?}:\n{}",
        text(out)
    );
}

/// A fresh directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-deploy-config-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The first 64 bytes of an ELF64 little-endian executable for `machine`.
fn elf_header(class: u8, machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class; // 2 = 64-bit
    h[5] = 1; // little-endian
    h[6] = 1; // version
    h[16] = 2; // ET_EXEC
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h
}

fn write_exe(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("dirs");
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

const AARCH64: u16 = 0xB7;
const X86_64: u16 = 0x3E;

#[test]
fn every_samconfig_environment_builds_and_deploys_one_architecture() {
    let out = check_arch(&root(), &["config"]);
    passes(&out);
    assert!(
        text(&out).contains("[default] build and deploy: arm64"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("[local] build and deploy: x86_64"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_samconfig_that_builds_one_architecture_and_deploys_another_is_refused() {
    let dir = scratch("mismatch");
    std::fs::copy(root().join("template.yaml"), dir.join("template.yaml")).expect("template");
    // The trap of issue 20: the build overridden to x86_64, the deploy not.
    std::fs::write(
        dir.join("samconfig.toml"),
        "version = 0.1\n[default.build.parameters]\nparameter_overrides = \"Architecture=x86_64\"\n\
         [default.deploy.parameters]\nparameter_overrides = \"Architecture=arm64 LogLevel=INFO\"\n",
    )
    .expect("samconfig");
    refuses(
        &check_arch(&dir, &["config"]),
        "sam build builds x86_64 ([default.build.parameters]) but sam deploy deploys arm64",
    );
    // A deploy that does not state it keeps the stack's previous value.
    std::fs::write(
        dir.join("samconfig.toml"),
        "version = 0.1\n[default.build.parameters]\nparameter_overrides = \"Architecture=x86_64\"\n\
         [default.deploy.parameters]\ncapabilities = \"CAPABILITY_IAM\"\n",
    )
    .expect("samconfig");
    refuses(
        &check_arch(&dir, &["config"]),
        "sam deploy does not state Architecture",
    );
    // The template default (arm64) against a deploy of x86_64.
    std::fs::write(
        dir.join("samconfig.toml"),
        "version = 0.1\n[default.deploy.parameters]\nparameter_overrides = [\"Architecture=x86_64\"]\n",
    )
    .expect("samconfig");
    refuses(
        &check_arch(&dir, &["config"]),
        "sam build builds arm64 (the template default (arm64))",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn real_x86_64_binaries_match_x86_64_only() {
    // This test's own executable is an x86_64 ELF built on this machine, as
    // are the function binaries when TOLLGATE_BIN_DIR names them.
    let me = std::env::current_exe().expect("the test executable");
    let mut binaries = vec![me];
    if let Ok(dir) = std::env::var("TOLLGATE_BIN_DIR") {
        let dir = root().join(dir);
        for f in [
            "pipeline-action",
            "deploy-hook",
            "notifier",
            "dead-letter",
            "approvals",
        ] {
            for candidate in [dir.join(f), dir.join(f).join("bootstrap")] {
                if candidate.is_file() {
                    binaries.push(candidate);
                }
            }
        }
    }
    for bin in &binaries {
        let path = bin.to_str().expect("utf-8 path");
        passes(&check_arch(&root(), &["elf", "--arch", "x86_64", path]));
        refuses(
            &check_arch(&root(), &["elf", "--arch", "arm64", path]),
            "built for x86_64, but the functions are arm64",
        );
    }
}

#[test]
fn synthetic_headers_are_checked_for_machine_class_and_magic() {
    let dir = scratch("headers");
    let build = dir.join("build");
    write_exe(&build.join("A/bootstrap"), &elf_header(2, AARCH64));
    write_exe(&build.join("B/bootstrap"), &elf_header(2, AARCH64));
    let build_s = build.to_str().expect("utf-8");
    passes(&check_arch(&dir, &["elf", "--arch", "arm64", build_s]));
    refuses(
        &check_arch(&dir, &["elf", "--arch", "x86_64", build_s]),
        "built for arm64, but the functions are x86_64",
    );
    let out = check_arch(&dir, &["built", build_s]);
    passes(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "arm64");

    // One function built for the other architecture: the bootstraps disagree.
    write_exe(&build.join("B/bootstrap"), &elf_header(2, X86_64));
    refuses(
        &check_arch(&dir, &["built", build_s]),
        "the bootstraps disagree",
    );
    refuses(
        &check_arch(&dir, &["elf", "--arch", "arm64", build_s]),
        "B/bootstrap: built for x86_64",
    );
    // A 32-bit ELF, a script and an empty directory.
    write_exe(&build.join("B/bootstrap"), &elf_header(1, AARCH64));
    refuses(
        &check_arch(&dir, &["elf", "--arch", "arm64", build_s]),
        "not a 64-bit little-endian ELF file",
    );
    write_exe(&build.join("B/bootstrap"), b"#!/bin/sh\necho hi\n");
    refuses(
        &check_arch(&dir, &["elf", "--arch", "arm64", build_s]),
        "not an ELF file",
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    refuses(
        &check_arch(
            &dir,
            &["elf", "--arch", "arm64", empty.to_str().expect("utf-8")],
        ),
        "no bootstrap found",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_deploy_check_compares_the_build_with_what_the_deploy_states() {
    let dir = scratch("deploy");
    std::fs::copy(root().join("samconfig.toml"), dir.join("samconfig.toml")).expect("samconfig");
    // `sam build --config-env local` output: x86_64.
    write_exe(
        &dir.join(".aws-sam/build/DeployHookFunction/bootstrap"),
        &elf_header(2, X86_64),
    );
    // A plain deploy deploys arm64 (samconfig's default environment).
    refuses(
        &check_arch(&dir, &["deploy"]),
        "built for x86_64, but the functions are arm64",
    );
    passes(&check_arch(&dir, &["deploy", "--config-env", "local"]));
    passes(&check_arch(
        &dir,
        &[
            "deploy",
            "--parameter-overrides",
            "Architecture=x86_64",
            "LogLevel=INFO",
        ],
    ));
    passes(&check_arch(
        &dir,
        &[
            "deploy",
            "--parameter-overrides",
            "ParameterKey=Architecture,ParameterValue=x86_64",
        ],
    ));
    // Overrides on the command line replace samconfig's: they must state it.
    refuses(
        &check_arch(&dir, &["deploy", "--parameter-overrides", "LogLevel=INFO"]),
        "does not state Architecture",
    );
    // A per-user file written by --guided is read like samconfig.toml.
    std::fs::write(
        dir.join("samconfig.user.toml"),
        "version = 0.1\n[default.deploy.parameters]\nstack_name = \"t\"\n\
         parameter_overrides = \"Architecture=\\\"arm64\\\" CheckSpecParameter=\\\"/t/spec\\\"\"\n",
    )
    .expect("user file");
    refuses(
        &check_arch(&dir, &["deploy", "--config-file", "samconfig.user.toml"]),
        "built for x86_64, but the functions are arm64",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
