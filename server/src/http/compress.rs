//! Response compression. Dynamic responses (SSR pages, server function
//! results) are compressed per request by [`layer`]; the static site is
//! compressed once by [`precompress_site`] into `.br`/`.gz` siblings that the
//! static file service sends as they are (the layer leaves responses that
//! already carry a `Content-Encoding` alone).
use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::SystemTime,
};

use axum::http::{header, Extensions, HeaderMap, StatusCode, Version};
use tower_http::compression::{
    predicate::{DefaultPredicate, Predicate},
    CompressionLayer, CompressionLevel,
};

/// Quality of on-the-fly compression (gzip and brotli): 4 keeps brotli fast
/// enough for per-request use (tens of MB/s) while already beating gzip's
/// ratio; the highest levels are for files compressed once.
pub const DYNAMIC_QUALITY: i32 = 4;
/// Brotli quality for static files: the best, since it is paid once per build.
const STATIC_BROTLI_QUALITY: u32 = 11;
/// Brotli's best quality runs well under 1 MB/s: seconds for a release
/// bundle, minutes for a 10 MB debug Wasm. Larger files get
/// [`LARGE_FILE_BROTLI_QUALITY`].
const BEST_QUALITY_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Brotli quality above [`BEST_QUALITY_MAX_BYTES`]: many times faster than 11.
const LARGE_FILE_BROTLI_QUALITY: u32 = 9;
/// Brotli window (log2 bytes) for static files: 4 MiB, brotli's usual default.
const STATIC_BROTLI_WINDOW: u32 = 22;
/// Files smaller than this are not compressed (the dynamic layer's own floor).
const MIN_SIZE_BYTES: u64 = 32;
/// Extensions of site files worth compressing: text and Wasm. Images, fonts
/// and archives are compressed formats already.
const COMPRESSIBLE: &[&str] = &[
    "js", "mjs", "css", "wasm", "html", "htm", "svg", "json", "map", "txt", "xml",
];
/// The sibling suffixes written, as `ServeDir::precompressed_br/gzip` look them up.
const SUFFIXES: [&str; 2] = ["br", "gz"];

/// The compression layer for the whole router: gzip and brotli, for
/// responses above 32 bytes that are not images or event streams, never for
/// a WebSocket upgrade.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .gzip(true)
        .br(true)
        .quality(CompressionLevel::Precise(DYNAMIC_QUALITY))
        .compress_when(DefaultPredicate::new().and(not_an_upgrade))
}

/// A `101 Switching Protocols` (WebSocket) response has no body to compress,
/// and a `Content-Encoding` on it would only confuse clients.
fn not_an_upgrade(status: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
    status != StatusCode::SWITCHING_PROTOCOLS && !headers.contains_key(header::UPGRADE)
}

/// What [`precompress_site`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Source files compressed now (each into both siblings).
    pub compressed: usize,
    /// Source files whose siblings were already newer than them.
    pub fresh: usize,
    /// Sibling files removed (watch mode).
    pub removed: usize,
}

/// A failure while compressing the site.
#[derive(Debug, thiserror::Error)]
pub enum PrecompressError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PrecompressError + '_ {
    move |source| PrecompressError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Walks `root` and writes a `.br` and a `.gz` next to every compressible
/// file (by extension, at least 32 bytes) whose siblings are missing or older
/// than it. Each sibling is written to a temporary name and renamed, so a
/// half-written one is never served. With `remove_only` (a development
/// server whose site is rebuilt under it), siblings are deleted instead, so a
/// stale one can never be served. A missing `root` is not an error.
pub fn precompress_site(root: &Path, remove_only: bool) -> Result<Summary, PrecompressError> {
    let mut summary = Summary::default();
    if !root.is_dir() {
        return Ok(summary);
    }
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_err(&path))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if is_compressible(&path) {
                compress_file(&path, remove_only, &mut summary)?;
            }
        }
    }
    Ok(summary)
}

fn is_compressible(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| COMPRESSIBLE.contains(&e.to_ascii_lowercase().as_str()))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn compress_file(
    path: &Path,
    remove_only: bool,
    summary: &mut Summary,
) -> Result<(), PrecompressError> {
    if remove_only {
        for suffix in SUFFIXES {
            let s = sibling(path, suffix);
            if s.exists() {
                fs::remove_file(&s).map_err(io_err(&s))?;
                summary.removed += 1;
            }
        }
        return Ok(());
    }
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.len() < MIN_SIZE_BYTES {
        return Ok(());
    }
    let source_time = meta.modified().map_err(io_err(path))?;
    let fresh = SUFFIXES
        .iter()
        .all(|s| modified(&sibling(path, s)).is_some_and(|t| t >= source_time));
    if fresh {
        summary.fresh += 1;
        return Ok(());
    }
    let data = fs::read(path).map_err(io_err(path))?;
    write_atomically(&sibling(path, "br"), &brotli(&data).map_err(io_err(path))?)?;
    write_atomically(&sibling(path, "gz"), &gzip(&data).map_err(io_err(path))?)?;
    summary.compressed += 1;
    Ok(())
}

fn brotli(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 4);
    {
        let mut w = brotli::CompressorWriter::new(
            &mut out,
            64 * 1024,
            if data.len() <= BEST_QUALITY_MAX_BYTES {
                STATIC_BROTLI_QUALITY
            } else {
                LARGE_FILE_BROTLI_QUALITY
            },
            STATIC_BROTLI_WINDOW,
        );
        w.write_all(data)?;
        w.flush()?;
    }
    Ok(out)
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut w = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::best(),
    );
    w.write_all(data)?;
    w.finish()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PrecompressError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn unbrotli(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(b, 4096)
            .read_to_end(&mut out)
            .expect("valid brotli");
        out
    }

    fn ungzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn writes_fresh_siblings_once_and_skips_small_and_binary_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let pkg = dir.path().join("pkg");
        fs::create_dir(&pkg)?;
        let js = "console.log('hello termroom');\n".repeat(100);
        fs::write(pkg.join("app.js"), &js)?;
        fs::write(dir.path().join("tiny.css"), "a{}")?;
        fs::write(dir.path().join("logo.png"), vec![7u8; 1000])?;

        let first = precompress_site(dir.path(), false)?;
        assert_eq!(first.compressed, 1);
        assert_eq!(unbrotli(&fs::read(pkg.join("app.js.br"))?), js.as_bytes());
        assert_eq!(ungzip(&fs::read(pkg.join("app.js.gz"))?), js.as_bytes());
        assert!(!dir.path().join("tiny.css.br").exists());
        assert!(!dir.path().join("logo.png.br").exists());

        let second = precompress_site(dir.path(), false)?;
        assert_eq!((second.compressed, second.fresh), (0, 1), "compressed once");

        // A rebuilt file (newer than its siblings) is compressed again.
        let js2 = "console.log('rebuilt');\n".repeat(100);
        fs::write(pkg.join("app.js"), &js2)?;
        fs::File::options()
            .write(true)
            .open(pkg.join("app.js"))?
            .set_modified(SystemTime::now() + std::time::Duration::from_secs(60))?;
        let third = precompress_site(dir.path(), false)?;
        assert_eq!(third.compressed, 1, "stale siblings are rewritten");
        assert_eq!(unbrotli(&fs::read(pkg.join("app.js.br"))?), js2.as_bytes());

        let removed = precompress_site(dir.path(), true)?;
        assert_eq!(removed.removed, 2);
        assert!(!pkg.join("app.js.br").exists());
        Ok(())
    }

    #[test]
    fn a_missing_site_is_not_an_error() {
        let r = precompress_site(Path::new("/nonexistent/termroom-site"), false);
        assert_eq!(r.ok(), Some(Summary::default()));
    }
}
