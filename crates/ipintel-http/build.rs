//! Embeds the built web interface (`web/dist` at the workspace root, made
//! by `scripts/build_web.sh`) into the crate.
//!
//! Writes `$OUT_DIR/web_assets.rs`: a table of every file of `web/dist`
//! (path, content type, ETag, bytes through `include_bytes!`), sorted by
//! path. When `web/dist` has no `index.html` the table is empty and the
//! service serves a page saying how to build the interface, so the crate
//! still builds (and lints) on a clean checkout without Node.js.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("../../web");
    let dist = web.join("dist");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("web_assets.rs");

    let built = dist.join("index.html").is_file();
    // Watching `web/` while there is no build notices the build appearing;
    // once there is one, only its own files matter.
    let watched = if built { &dist } else { &web };
    println!("cargo::rerun-if-changed={}", watched.display());

    let mut files = Vec::new();
    if built {
        collect(&dist, &dist, &mut files)?;
    }
    files.sort();
    fs::write(out, table(built, &dist, &files)?)
}

/// Every file under `dir`, as paths relative to `root` with `/` separators.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if path.extension().is_some_and(|ext| ext != "map") {
            let relative = path.strip_prefix(root).map_err(io::Error::other)?;
            let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
            files.push(parts.join("/"));
        }
    }
    Ok(())
}

fn table(built: bool, dist: &Path, files: &[String]) -> io::Result<String> {
    let mut code = String::new();
    let _ = writeln!(
        code,
        "/// Whether `web/dist` was built when ipintel was compiled."
    );
    let _ = writeln!(code, "pub(crate) const BUILT: bool = {built};");
    let _ = writeln!(code, "/// The files of `web/dist`, sorted by path.");
    let _ = writeln!(code, "pub(crate) static ASSETS: &[Asset] = &[");
    for file in files {
        let path = dist.join(file);
        let bytes = fs::read(&path)?;
        let _ = writeln!(
            code,
            "    Asset {{ path: {file:?}, content_type: {:?}, etag: \"\\\"{:016x}\\\"\", \
             body: include_bytes!({:?}) }},",
            content_type(file),
            fnv1a(&bytes),
            path.display().to_string(),
        );
    }
    let _ = writeln!(code, "];");
    Ok(code)
}

fn content_type(file: &str) -> &'static str {
    let ext = file.rsplit('.').next().unwrap_or_default();
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: enough to tell versions of a file apart in an ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
