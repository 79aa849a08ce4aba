//! The text of log lines: the agent's timestamp prefix and plausible command output, both a
//! pure function of a build's seed so the same build always prints the same lines.

use super::volume::Volume;

/// A 64-bit mix (splitmix64's finaliser): spreads `a` and `b` over all bits.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of a string: a stable seed from a build id.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian, UTC).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024/01/01 12:00:00.123456` (UTC), the agent's prefix time: `ts_ms` plus `micros`
/// (0..1000) below the millisecond.
pub fn container_time(ts_ms: i64, micros: u64) -> String {
    let secs = ts_ms.div_euclid(1000);
    let sub = ts_ms.rem_euclid(1000) * 1000 + (micros % 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}/{mo:02}/{d:02} {:02}:{:02}:{:02}.{sub:06}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

const WORDS: [&str; 16] = [
    "parser", "router", "config", "client", "server", "cache", "auth", "metrics", "storage",
    "queue", "session", "report", "render", "schema", "index", "worker",
];
const PACKAGES: [&str; 10] = [
    "lodash", "left-pad", "request", "uuid", "glob", "minimist", "chalk", "debug", "semver",
    "yargs",
];

fn pick<'a>(list: &[&'a str], h: u64) -> &'a str {
    list[(h % list.len() as u64) as usize]
}

/// Which tool a command runs, for the look of its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Npm,
    Python,
    Docker,
    Cargo,
    Generic,
}

fn tool(command: &str) -> Tool {
    let c = command.to_ascii_lowercase();
    if ["npm", "yarn", "npx", "node"].iter().any(|t| c.contains(t)) {
        Tool::Npm
    } else if ["pytest", "python", "pip"].iter().any(|t| c.contains(t)) {
        Tool::Python
    } else if c.contains("docker") {
        Tool::Docker
    } else if c.contains("cargo") {
        Tool::Cargo
    } else {
        Tool::Generic
    }
}

/// One output line (without newline) of `command`: line `k` of `n`, chosen by `h`.
fn plain_line(command: &str, k: u32, n: u32, h: u64) -> String {
    let (w1, w2, pkg) = (
        pick(&WORDS, h >> 8),
        pick(&WORDS, h >> 16),
        pick(&PACKAGES, h >> 24),
    );
    let (a, b, c) = ((h >> 32) % 10, (h >> 36) % 30, (h >> 42) % 20);
    let (i, n) = (k + 1, n.max(1));
    match (tool(command), h % 3) {
        (Tool::Npm, 0) => format!("PASS src/{w1}.test.js ({} ms)", 10 + (h >> 20) % 900),
        (Tool::Npm, 1) => {
            format!("npm WARN deprecated {pkg}@{a}.{b}.{c}: this version is no longer supported")
        }
        (Tool::Npm, _) => format!(
            "added {} packages, and audited {} packages in {a}s",
            b + 1,
            b + c + 1
        ),
        (Tool::Python, 0) => {
            format!(
                "tests/test_{w1}.py::test_{w2} PASSED [{:3}%]",
                u64::from(i) * 100 / u64::from(n)
            )
        }
        (Tool::Python, 1) => format!("Collecting {pkg}=={a}.{b}.{c}"),
        (Tool::Python, _) => format!(
            "  Downloading {pkg}-{a}.{b}.{c}-py3-none-any.whl ({} kB)",
            b * 7 + 3
        ),
        (Tool::Docker, 0) => format!("Step {i}/{n} : RUN make {w1}"),
        (Tool::Docker, 1) => format!(" ---> Running in {:012x}", h >> 16),
        (Tool::Docker, _) => format!("#{i} [build {i}/{n}] COPY src/{w1} ./{w1}"),
        (Tool::Cargo, 0) => format!("   Compiling {w1}-{w2} v0.{a}.{b}"),
        (Tool::Cargo, 1) => format!("test {w1}::{w2}_{i} ... ok"),
        (Tool::Cargo, _) => format!("warning: unused variable: `{w2}` in {w1}.rs line {i}"),
        (Tool::Generic, 0) => {
            format!("[{i}/{n}] Building C object CMakeFiles/app.dir/src/{w1}.c.o")
        }
        (Tool::Generic, 1) => format!("cc -O2 -Wall -Isrc -c src/{w1}.c -o build/{w1}.o"),
        (Tool::Generic, _) => format!("ok {i} - {w1} handles {w2} input"),
    }
}

/// `line` with colour codes and non-ASCII text around it.
fn decorate(line: &str, h: u64) -> String {
    match h % 3 {
        0 => format!("\u{1b}[32m\u{2714}\u{1b}[0m {line} \u{2014} \u{fc}n\u{ef}c\u{f6}d\u{e9} ok"),
        1 => format!(
            "\u{1b}[1;33m\u{26a0}\u{1b}[0m {line} (gr\u{f6}\u{df}e: {} \u{41a}\u{411})",
            h % 1000
        ),
        _ => format!(
            "\u{1b}[36m\u{2192}\u{1b}[0m {line} \u{65e5}\u{672c}\u{8a9e}\u{30c6}\u{30ad}\u{30b9}\u{30c8} \u{1f680}"
        ),
    }
}

const FILLER: &[u8] = b" abcdefghijklmnopqrstuvwxyz0123456789";

/// `body` made exactly `bytes` UTF-8 bytes long with its newline: cut at a character
/// boundary, then padded with ASCII.
fn fit(body: &str, bytes: usize) -> String {
    let room = bytes.saturating_sub(1);
    let mut cut = body.len().min(room);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(bytes);
    out.push_str(&body[..cut]);
    let mut i = 0;
    while out.len() < room {
        out.push(char::from(FILLER[i % FILLER.len()]));
        i += 1;
    }
    out.push('\n');
    out
}

/// Output line `k` of `n` that `command` prints, with its newline (as CodeBuild's events
/// carry one). `h` is the line's own seed.
pub fn output_line(command: &str, k: u32, n: u32, h: u64, volume: &Volume) -> String {
    let mut line = plain_line(command, k, n, h);
    if volume.unicode {
        line = decorate(&line, h >> 48);
    }
    match volume.line_bytes {
        Some(bytes) => fit(&line, bytes),
        None => {
            line.push('\n');
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_time_with_micros() {
        assert_eq!(container_time(0, 0), "1970/01/01 00:00:00.000000");
        // 2024-12-22T20:03:40.120Z
        assert_eq!(
            container_time(1_734_897_820_120, 1),
            "2024/12/22 20:03:40.120001"
        );
        // A leap day.
        assert_eq!(
            container_time(1_709_164_800_000, 999),
            "2024/02/29 00:00:00.000999"
        );
    }

    #[test]
    fn output_is_deterministic_and_sized() {
        let v = Volume::default();
        let a = output_line("make test", 0, 4, mix(1, 2), &v);
        assert_eq!(a, output_line("make test", 0, 4, mix(1, 2), &v));
        assert!(a.ends_with('\n') && a.is_ascii());
        for bytes in [1, 2, 10, 300, 262_118] {
            for unicode in [false, true] {
                let v = Volume {
                    line_bytes: Some(bytes),
                    unicode,
                    ..Volume::default()
                };
                for h in 0..6 {
                    let line = output_line("npm test", 3, 9, mix(7, h), &v);
                    assert_eq!(line.len(), bytes, "{bytes} {unicode} {h}");
                    assert!(line.ends_with('\n'));
                }
            }
        }
    }

    #[test]
    fn unicode_lines_carry_colour_and_non_ascii() {
        let v = Volume {
            unicode: true,
            ..Volume::default()
        };
        for h in 0..3u64 {
            let line = output_line("pytest", 1, 2, h << 48, &v);
            assert!(line.contains('\u{1b}'), "{line:?}");
            assert!(!line.is_ascii(), "{line:?}");
        }
    }

    #[test]
    fn tools_shape_the_lines() {
        assert!(plain_line("docker build .", 0, 3, 0).starts_with("Step 1/3"));
        assert!(plain_line("cargo build", 0, 3, 0).contains("Compiling"));
        assert!(plain_line("make", 1, 3, 0).starts_with("[2/3]"));
    }
}
