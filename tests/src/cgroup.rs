//! A memory-limited cgroup for one process: a real out-of-memory kill, as
//! Lambda's sandbox does it when a function outgrows its memory.
//!
//! Needs a writable cgroup memory controller (v2 `memory.max`, or v1
//! `memory.limit_in_bytes`), i.e. root on a host that delegates it. Where
//! the machine does not allow it, [`MemoryCage::new`] says why and the
//! caller skips (and says so).

use std::path::PathBuf;

/// A cgroup with a memory limit; removed on drop.
#[derive(Debug)]
pub struct MemoryCage {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCage {
    /// Creates `tollgate-<name>-<pid>` limited to `limit_bytes` (no swap).
    pub fn new(name: &str, limit_bytes: u64) -> Result<MemoryCage, String> {
        let leaf = format!("tollgate-{name}-{}", std::process::id());
        let v2_root = PathBuf::from("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
        let (dir, limit_file) = if v2 {
            (v2_root.join(&leaf), "memory.max")
        } else {
            (v2_root.join("memory").join(&leaf), "memory.limit_in_bytes")
        };
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
        let cage = MemoryCage { dir, v2 };
        cage.write(limit_file, &limit_bytes.to_string())?;
        if v2 {
            // No swap: the limit is the memory the process may use.
            let _ = cage.write("memory.swap.max", "0");
        } else {
            let _ = cage.write("memory.memsw.limit_in_bytes", &limit_bytes.to_string());
        }
        Ok(cage)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("cannot write {value} to {}/{file}: {e}", self.dir.display()))
    }

    /// Moves process `pid` into the cgroup.
    pub fn enter(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// How many processes the kernel's OOM killer killed in this cgroup
    /// (`oom_kill` of `memory.events` (v2) or `memory.oom_control` (v1)).
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for MemoryCage {
    fn drop(&mut self) {
        // Empty once its process is gone; a leftover empty cgroup is harmless.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
