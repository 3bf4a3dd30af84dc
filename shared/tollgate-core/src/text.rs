//! Text helpers every crate shares, one implementation each: fitting text
//! into a service's limit ([`truncate`], which says how much was cut) or a
//! chat line ([`ellipsize`]), durations ([`human_duration`]), "did you mean"
//! hints ([`did_you_mean`]), and describing a JSON error without quoting the
//! document (which may hold a secret).

/// Fits `text` into `max` characters. Longer text keeps its start and ends
/// with a marker saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text.to_owned();
    }
    // The marker's length depends on the number it prints. Find the cut
    // whose marker exactly fills the room, so the result is `max` chars.
    let marker_for = |cut: usize| format!(" …[truncated {cut} chars]");
    let fixed = marker_for(0).chars().count() - 1;
    let digits = |n: usize| n.to_string().len();
    let mut choice = None;
    for d in (1..=digits(total)).rev() {
        let reserve = fixed + d;
        if max <= reserve {
            continue;
        }
        let keep = max - reserve;
        if keep < total && digits(total - keep) == d {
            choice = Some(keep);
            break;
        }
    }
    let Some(keep) = choice else {
        return text.chars().take(max).collect();
    };
    let cut = total - keep;
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&marker_for(cut));
    out
}

/// Describes a serde_json error without quoting the offending value, which
/// may be a secret (e.g. credentials of the wrong type).
pub fn describe_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    // serde_json quotes values as `string "…"`; drop the quoted part.
    while let Some(pos) = rest.find("string \"") {
        let (head, tail) = rest.split_at(pos + "string".len());
        out.push_str(head);
        let after_quote = &tail[2..];
        match after_quote.find("\", ") {
            Some(end) => rest = &after_quote[end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Cuts `text` to at most `max` characters, ending in `…` when cut: for
/// chat lines, where a marker saying how much was cut would be noise
/// ([`truncate`] is for reports, where it is not).
pub fn ellipsize(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Seconds as people read them: `45s`, `4m 12s`, `30m`, `1h 05m`, `2h`.
pub fn human_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// The choice `input` most likely misspells, for a "did you mean" hint:
/// compared without case and with `-` read as `_`, within an edit distance
/// of a third of the choice's length (at least 2, and less than the whole
/// choice), or sharing its first four characters.
pub fn did_you_mean<'c>(input: &str, choices: &[&'c str]) -> Option<&'c str> {
    let norm = |t: &str| t.to_ascii_lowercase().replace('-', "_");
    let input = norm(input);
    choices
        .iter()
        .map(|c| (norm(c), *c))
        .filter_map(|(n, c)| {
            let d = edit_distance(&input, &n);
            let common = input
                .chars()
                .zip(n.chars())
                .take_while(|(x, y)| x == y)
                .count();
            let close = d <= (n.len() / 3).max(2) && d < n.len();
            (close || common >= 4).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_the_same_everywhere() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(192), "3m 12s");
        assert_eq!(human_duration(252), "4m 12s");
        assert_eq!(human_duration(1800), "30m");
        assert_eq!(human_duration(3725), "1h 02m");
        assert_eq!(human_duration(3900), "1h 05m");
        assert_eq!(human_duration(7200), "2h");
    }

    #[test]
    fn ellipsize_cuts_with_one_character() {
        assert_eq!(ellipsize("abc", 3), "abc");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("abc", 0), "");
    }

    #[test]
    fn hints_are_close_matches_only() {
        assert_eq!(
            did_you_mean("servce", &["cluster", "service"]),
            Some("service")
        );
        assert_eq!(did_you_mean("zzzzzz", &["cluster", "service"]), None);
        assert_eq!(
            did_you_mean("max-body", &["max_body", "timeout"]),
            Some("max_body")
        );
        assert_eq!(did_you_mean("notfy", &["notify", "routes"]), Some("notify"));
        assert_eq!(
            did_you_mean("pipe", &["pipeline", "stage"]),
            Some("pipeline")
        );
        assert_eq!(did_you_mean("ab", &["cd"]), None);
    }
}
