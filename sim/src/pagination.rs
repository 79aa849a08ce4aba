//! ListBuildsForProject paging: pure functions over ids in build order.

/// The service's page size for ListBuildsForProject.
pub const PAGE_SIZE: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

impl SortOrder {
    /// Parses `sortOrder`; None is the default (DESCENDING, newest first).
    pub fn parse(s: Option<&str>) -> Option<SortOrder> {
        match s {
            None | Some("DESCENDING") => Some(SortOrder::Descending),
            Some("ASCENDING") => Some(SortOrder::Ascending),
            Some(_) => None,
        }
    }
}

/// One page of ids. `ids` are oldest first. The token names the last id returned, so pages
/// stay stable while new builds are added. None for a token that names no build.
pub fn page(
    ids: &[String],
    order: SortOrder,
    next_token: Option<&str>,
    page_size: usize,
) -> Option<(Vec<String>, Option<String>)> {
    page_where(ids, order, next_token, page_size, |_| true)
}

/// [`page`] over the ids `keep` accepts. The token is a position in all of `ids`, so it
/// stays valid when the id it names no longer passes the filter (a batch whose status
/// changed between pages).
pub fn page_where(
    ids: &[String],
    order: SortOrder,
    next_token: Option<&str>,
    page_size: usize,
    keep: impl Fn(&str) -> bool,
) -> Option<(Vec<String>, Option<String>)> {
    let ordered: Vec<&String> = match order {
        SortOrder::Ascending => ids.iter().collect(),
        SortOrder::Descending => ids.iter().rev().collect(),
    };
    let begin = match next_token {
        None => 0,
        Some(token) => {
            let last = decode(token)?;
            ordered.iter().position(|id| **id == last)? + 1
        }
    };
    let mut rest = ordered[begin.min(ordered.len())..]
        .iter()
        .filter(|id| keep(id.as_str()));
    let items: Vec<String> = rest
        .by_ref()
        .take(page_size.max(1))
        .map(|s| s.to_string())
        .collect();
    let next = rest.next().and_then(|_| items.last().map(|id| encode(id)));
    Some((items, next))
}

fn encode(id: &str) -> String {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sim1-{hex}")
}

fn decode(token: &str) -> Option<String> {
    let hex = token.strip_prefix("sim1-")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("p:{i}")).collect()
    }

    #[test]
    fn descending_is_default_and_pages() {
        let all = ids(250);
        let order = SortOrder::parse(None).unwrap_or(SortOrder::Ascending);
        assert_eq!(order, SortOrder::Descending);
        let (p1, t1) = page(&all, order, None, PAGE_SIZE).unwrap_or_default();
        assert_eq!(p1.len(), 100);
        assert_eq!(p1[0], "p:250");
        let (p2, t2) = page(&all, order, t1.as_deref(), PAGE_SIZE).unwrap_or_default();
        assert_eq!(p2[0], "p:150");
        let (p3, t3) = page(&all, order, t2.as_deref(), PAGE_SIZE).unwrap_or_default();
        assert_eq!(p3.len(), 50);
        assert_eq!(p3.last().map(String::as_str), Some("p:1"));
        assert_eq!(t3, None);
    }

    #[test]
    fn ascending_and_exact_page() {
        let all = ids(100);
        let (p, t) = page(&all, SortOrder::Ascending, None, PAGE_SIZE).unwrap_or_default();
        assert_eq!(p[0], "p:1");
        assert_eq!(t, None);
    }

    #[test]
    fn pages_are_stable_when_builds_are_added() {
        let mut all = ids(150);
        let (_, t) = page(&all, SortOrder::Descending, None, PAGE_SIZE).unwrap_or_default();
        all.push("p:151".into());
        let (p2, _) =
            page(&all, SortOrder::Descending, t.as_deref(), PAGE_SIZE).unwrap_or_default();
        assert_eq!(p2[0], "p:50");
    }

    #[test]
    fn a_filter_pages_what_it_keeps_and_tokens_survive_a_change() {
        let all = ids(10);
        let even = |id: &str| {
            id.trim_start_matches("p:")
                .parse::<u32>()
                .is_ok_and(|n| n % 2 == 0)
        };
        let (p1, t1) = page_where(&all, SortOrder::Descending, None, 2, even).unwrap_or_default();
        assert_eq!(p1, ["p:10", "p:8"]);
        // p:8 no longer passes: the token still knows where it was.
        let (p2, t2) = page_where(&all, SortOrder::Descending, t1.as_deref(), 2, |id| {
            even(id) && id != "p:8"
        })
        .unwrap_or_default();
        assert_eq!(p2, ["p:6", "p:4"]);
        let (p3, t3) =
            page_where(&all, SortOrder::Descending, t2.as_deref(), 2, even).unwrap_or_default();
        assert_eq!((p3, t3), (vec!["p:2".to_string()], None));
        let (none, t) =
            page_where(&all, SortOrder::Ascending, None, 5, |_| false).unwrap_or_default();
        assert!(none.is_empty() && t.is_none());
    }

    #[test]
    fn bad_tokens_and_orders() {
        let all = ids(3);
        assert!(page(&all, SortOrder::Ascending, Some("garbage"), 100).is_none());
        assert!(page(&all, SortOrder::Ascending, Some(&encode("x:1")), 100).is_none());
        assert_eq!(SortOrder::parse(Some("SIDEWAYS")), None);
        assert_eq!(
            page(&[], SortOrder::Ascending, None, 100),
            Some((vec![], None))
        );
    }
}
