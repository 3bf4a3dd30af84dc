//! Pipeline artifacts: the [`ArtifactStore`] port (S3 with the job's
//! artifact credentials), choosing an input artifact, and reading and
//! writing the zip files CodePipeline passes between actions.
//!
//! Only small, named files are read out of a zip, each with a size cap, so a
//! large build output or a zip bomb cannot exhaust the function's memory.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Cursor, Read, Write};
use tollgate_report::events::codepipeline::{
    Artifact, ArtifactCredentials, EncryptionKey, S3Location,
};

/// Largest single file read out of an artifact zip.
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;

/// A problem getting, reading or writing an artifact. Messages name the
/// bucket and key; they never contain the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The object (or bucket) does not exist.
    #[error(
        "artifact {artifact} was not found at s3://{bucket}/{key} ({detail}); it may have been \
         removed by a lifecycle rule or never written: re-run the pipeline from its source stage"
    )]
    NotFound {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What S3 said.
        detail: String,
    },
    /// S3 refused the job's credentials access.
    #[error(
        "access to artifact {artifact} at s3://{bucket}/{key} was denied for the job's artifact \
         credentials ({detail}); the pipeline's service role needs s3:GetObject/s3:PutObject on \
         the artifact bucket"
    )]
    Denied {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What S3 said.
        detail: String,
    },
    /// The credentials themselves were refused (expired, malformed).
    #[error(
        "the job's artifact credentials were refused for s3://{bucket}/{key} ({detail}); they \
         may have expired: retry the stage"
    )]
    BadCredentials {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What S3 said.
        detail: String,
    },
    /// KMS refused to decrypt or encrypt the object.
    #[error(
        "KMS refused access for artifact {artifact} at s3://{bucket}/{key} ({detail}); the \
         pipeline's service role needs kms:Decrypt and kms:GenerateDataKey on the artifact \
         store's key{key_hint}"
    )]
    Kms {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What S3/KMS said.
        detail: String,
        /// ` (arn:…)` when the job names the key.
        key_hint: String,
    },
    /// The object is larger than the configured cap.
    #[error(
        "artifact {artifact} at s3://{bucket}/{key} is {size} bytes, over the {max}-byte limit; \
         raise TOLLGATE_ARTIFACT_MAX_BYTES (and the function's memory) or make the artifact smaller"
    )]
    TooLarge {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Object size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// S3 could not be reached or kept failing.
    #[error("S3 was unavailable for artifact {artifact} at s3://{bucket}/{key}: {detail}")]
    Unavailable {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What failed.
        detail: String,
    },
    /// Any other S3 error.
    #[error("S3 rejected the request for artifact {artifact} at s3://{bucket}/{key}: {detail}")]
    Other {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What S3 said.
        detail: String,
    },
    /// The object is not a zip file.
    #[error(
        "artifact {artifact} (s3://{bucket}/{key}) is not a readable zip file ({detail}); \
         CodePipeline artifacts are zips: check the producing action's artifact settings"
    )]
    NotAZip {
        /// Artifact name.
        artifact: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Zip reader's complaint.
        detail: String,
    },
    /// A file inside the zip is too big or unreadable.
    #[error("{path} in artifact {artifact} could not be read: {detail}")]
    BadEntry {
        /// Artifact name.
        artifact: String,
        /// Path inside the zip.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The output zip could not be built.
    #[error("the output artifact zip could not be written: {0}")]
    Write(String),
}

/// Port: artifact objects in S3, always accessed with the job's
/// `artifactCredentials` (never the function's role).
pub trait ArtifactStore: Send + Sync {
    /// Downloads the object; refuses objects over `max_bytes`. `artifact` is
    /// the artifact's name, for messages.
    fn get(
        &self,
        artifact: &str,
        location: &S3Location,
        credentials: &ArtifactCredentials,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ArtifactError>> + Send;

    /// Uploads an object, encrypted with the job's KMS key when one is given.
    fn put(
        &self,
        artifact: &str,
        location: &S3Location,
        credentials: &ArtifactCredentials,
        body: Vec<u8>,
        encryption_key: Option<&EncryptionKey>,
    ) -> impl Future<Output = Result<(), ArtifactError>> + Send;
}

/// Why an artifact named in the parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The named artifact is not one of the action's.
    #[error(
        "{field} names artifact \"{name}\", but the action's {direction} artifacts are: {available}; \
         add it to the action's {direction} artifacts or fix the name"
    )]
    Unknown {
        /// Parameter field.
        field: &'static str,
        /// Name given.
        name: String,
        /// `input` or `output`.
        direction: &'static str,
        /// Names available.
        available: String,
    },
    /// No name given and not exactly one artifact to choose.
    #[error(
        "the action has {count} {direction} artifacts ({available}); set \"{field}\" in \
         UserParameters to pick one"
    )]
    Ambiguous {
        /// Parameter field.
        field: &'static str,
        /// How many there are.
        count: usize,
        /// `input` or `output`.
        direction: &'static str,
        /// Names available.
        available: String,
    },
    /// The artifact has no S3 location.
    #[error(
        "{direction} artifact \"{name}\" has no S3 location in the job; only S3 artifact stores are supported"
    )]
    NoLocation {
        /// Artifact name.
        name: String,
        /// `input` or `output`.
        direction: &'static str,
    },
}

/// Picks an artifact by name, or the only one when no name is given.
pub fn select<'a>(
    artifacts: &'a [Artifact],
    name: Option<&str>,
    field: &'static str,
    direction: &'static str,
) -> Result<(&'a Artifact, &'a S3Location), SelectError> {
    let available = || {
        if artifacts.is_empty() {
            "none".to_owned()
        } else {
            artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let artifact = match name {
        Some(n) => artifacts
            .iter()
            .find(|a| a.name == n)
            .ok_or_else(|| SelectError::Unknown {
                field,
                name: n.to_owned(),
                direction,
                available: available(),
            })?,
        None if artifacts.len() == 1 => &artifacts[0],
        None => {
            return Err(SelectError::Ambiguous {
                field,
                count: artifacts.len(),
                direction,
                available: available(),
            });
        }
    };
    let location =
        artifact
            .location
            .s3_location
            .as_ref()
            .ok_or_else(|| SelectError::NoLocation {
                name: artifact.name.clone(),
                direction,
            })?;
    Ok((artifact, location))
}

/// An artifact zip held in memory.
pub struct Archive {
    name: String,
    zip: zip::ZipArchive<Cursor<Vec<u8>>>,
    /// Normalised path → index in the zip.
    index: BTreeMap<String, usize>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("name", &self.name)
            .field("files", &self.index.len())
            .finish()
    }
}

/// `./a/b` and `/a/b` are both `a/b`.
fn normalise(path: &str) -> String {
    let mut p = path.replace('\\', "/");
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.to_owned();
    }
    p.trim_start_matches('/').to_owned()
}

impl Archive {
    /// Opens a downloaded artifact.
    pub fn open(name: &str, location: &S3Location, bytes: Vec<u8>) -> Result<Self, ArtifactError> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| ArtifactError::NotAZip {
            artifact: name.to_owned(),
            bucket: location.bucket_name.clone(),
            key: location.object_key.clone(),
            detail: e.to_string(),
        })?;
        let mut index = BTreeMap::new();
        for (i, raw) in zip.file_names_raw().enumerate() {
            let path = String::from_utf8_lossy(raw);
            if path.ends_with('/') {
                continue;
            }
            index.entry(normalise(&path)).or_insert(i);
        }
        Ok(Self {
            name: name.to_owned(),
            zip,
            index,
        })
    }

    /// The artifact's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file paths in the zip (directories left out), sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Whether `path` is in the zip.
    pub fn contains(&self, path: &str) -> bool {
        self.index.contains_key(&normalise(path))
    }

    /// A short listing for "not found" messages: the first paths, then a count.
    pub fn listing(&self) -> String {
        const SHOWN: usize = 15;
        if self.index.is_empty() {
            return "the zip is empty".to_owned();
        }
        let mut out = self.paths().take(SHOWN).collect::<Vec<_>>().join(", ");
        if self.index.len() > SHOWN {
            out.push_str(&format!(" and {} more", self.index.len() - SHOWN));
        }
        out
    }

    /// Reads one file, at most [`MAX_FILE_BYTES`]. `Ok(None)` when absent.
    pub fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        let Some(&i) = self.index.get(&normalise(path)) else {
            return Ok(None);
        };
        let bad = |detail: String| ArtifactError::BadEntry {
            artifact: self.name.clone(),
            path: path.to_owned(),
            detail,
        };
        let entry = self.zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        if entry.size() > MAX_FILE_BYTES {
            return Err(bad(format!(
                "it is {} bytes uncompressed, over the {MAX_FILE_BYTES}-byte limit for files tollgate reads",
                entry.size()
            )));
        }
        let mut out = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        // The declared size can lie: cap the actual read as well.
        entry
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(e.to_string()))?;
        if out.len() as u64 > MAX_FILE_BYTES {
            return Err(bad(format!(
                "it is over the {MAX_FILE_BYTES}-byte limit for files tollgate reads"
            )));
        }
        Ok(Some(out))
    }

    /// Reads one file as UTF-8 text.
    pub fn read_text(&mut self, path: &str) -> Result<Option<String>, ArtifactError> {
        match self.read(path)? {
            None => Ok(None),
            Some(bytes) => {
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| ArtifactError::BadEntry {
                        artifact: self.name.clone(),
                        path: path.to_owned(),
                        detail: "it is not UTF-8 text".to_owned(),
                    })
            }
        }
    }
}

/// Builds a zip holding `files` (path, content), deflate-compressed.
pub fn build_zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, ArtifactError> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (path, content) in files {
        writer
            .start_file(path.as_str(), options)
            .map_err(|e| ArtifactError::Write(e.to_string()))?;
        writer
            .write_all(content)
            .map_err(|e| ArtifactError::Write(e.to_string()))?;
    }
    writer
        .finish()
        .map(Cursor::into_inner)
        .map_err(|e| ArtifactError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_report::events::codepipeline::ArtifactLocation;

    fn loc() -> S3Location {
        S3Location {
            bucket_name: "bucket".into(),
            object_key: "pipe/Build/abc".into(),
        }
    }

    fn artifact(name: &str) -> Artifact {
        Artifact {
            name: name.into(),
            revision: None,
            location: ArtifactLocation {
                kind: Some("S3".into()),
                s3_location: Some(loc()),
            },
        }
    }

    #[test]
    fn zips_round_trip() {
        let bytes = build_zip(&[
            ("imagedefinitions.json".into(), b"[]".to_vec()),
            ("deploy/taskdef.json".into(), b"{}".to_vec()),
        ])
        .expect("zip");
        let mut a = Archive::open("BuildOutput", &loc(), bytes).expect("open");
        assert_eq!(
            a.paths().collect::<Vec<_>>(),
            ["deploy/taskdef.json", "imagedefinitions.json"]
        );
        assert_eq!(
            a.read("./imagedefinitions.json").expect("read"),
            Some(b"[]".to_vec())
        );
        assert_eq!(a.read("missing.json").expect("read"), None);
        assert!(a.contains("/deploy/taskdef.json"));
    }

    #[test]
    fn not_a_zip_names_the_location() {
        let err = Archive::open("BuildOutput", &loc(), b"hello".to_vec()).expect_err("not a zip");
        let text = err.to_string();
        assert!(text.contains("s3://bucket/pipe/Build/abc"), "{text}");
        assert!(text.contains("not a readable zip"), "{text}");
    }

    #[test]
    fn oversized_entries_are_refused() {
        let big = vec![b'a'; (MAX_FILE_BYTES + 10) as usize];
        let bytes = build_zip(&[("big.json".into(), big)]).expect("zip");
        let mut a = Archive::open("A", &loc(), bytes).expect("open");
        let err = a.read("big.json").expect_err("too big");
        assert!(err.to_string().contains("byte limit"), "{err}");
    }

    #[test]
    fn selection_by_name_or_single() {
        let arts = vec![artifact("BuildOutput")];
        let (a, _) = select(&arts, None, "artifact", "input").expect("the only one");
        assert_eq!(a.name, "BuildOutput");
        let err = select(&arts, Some("Build"), "artifact", "input").expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("artifact \"Build\""), "{text}");
        assert!(text.contains("BuildOutput"), "{text}");

        let two = vec![artifact("A"), artifact("B")];
        let err = select(&two, None, "artifact", "input").expect_err("ambiguous");
        assert!(err.to_string().contains("set \"artifact\""), "{err}");
        let err = select(&[], None, "artifact", "input").expect_err("none");
        assert!(
            err.to_string().contains("0 input artifacts (none)"),
            "{err}"
        );
    }
}
