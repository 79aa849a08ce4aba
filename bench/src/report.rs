//! Figures, goals, the table and the CSV.

use std::fmt::Write as _;

use crate::util::median;

#[derive(Clone, Copy, Debug)]
pub enum Goal {
    Le(f64),
    Lt(f64),
    Eq(f64),
    None,
}

impl Goal {
    fn text(&self) -> String {
        match self {
            Goal::Le(v) => format!("<= {}", fmt(*v)),
            Goal::Lt(v) => format!("< {}", fmt(*v)),
            Goal::Eq(v) => format!("= {}", fmt(*v)),
            Goal::None => String::new(),
        }
    }
    fn met(&self, v: f64) -> Option<bool> {
        match self {
            Goal::Le(g) => Some(v <= *g + 1e-9),
            Goal::Lt(g) => Some(v < *g),
            Goal::Eq(g) => Some((v - *g).abs() < 1e-9),
            Goal::None => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub section: &'static str,
    pub figure: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    pub goal: Goal,
    pub note: String,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub header: Vec<(String, String)>,
}

impl Report {
    pub fn add(
        &mut self,
        section: &'static str,
        figure: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
        goal: Goal,
        note: impl Into<String>,
    ) {
        let samples: Vec<f64> = samples.into_iter().filter(|v| v.is_finite()).collect();
        self.rows.push(Row {
            section,
            figure: figure.into(),
            unit,
            samples,
            goal,
            note: note.into(),
        });
    }

    pub fn median_of(&self, figure: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.figure == figure)
            .and_then(|r| median(&r.samples))
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| | figure | median | spread (min..max) | n | unit | goal | met |\n|---|---|---:|---|---:|---|---|---|"
        );
        for r in &self.rows {
            let (m, spread) = match median(&r.samples) {
                Some(m) => {
                    let lo = r.samples.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = r.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (
                        fmt(m),
                        if r.samples.len() > 1 {
                            format!("{}..{}", fmt(lo), fmt(hi))
                        } else {
                            "-".into()
                        },
                    )
                }
                None => ("n/a".into(), "-".into()),
            };
            let met = median(&r.samples)
                .and_then(|m| r.goal.met(m))
                .map(|b| if b { "yes" } else { "**no**" })
                .unwrap_or("");
            let figure = if r.note.is_empty() {
                r.figure.clone()
            } else {
                format!("{} ({})", r.figure, r.note)
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.section,
                figure,
                m,
                spread,
                r.samples.len(),
                r.unit,
                r.goal.text(),
                met
            );
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut s = String::from("section,figure,unit,median,min,max,n,goal,met,samples\n");
        for r in &self.rows {
            let m = median(&r.samples);
            let lo = r.samples.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                s,
                "{},\"{}\",{},{},{},{},{},\"{}\",{},\"{}\"",
                r.section,
                r.figure.replace('"', "'"),
                r.unit,
                m.map(fmt).unwrap_or_default(),
                if r.samples.is_empty() {
                    String::new()
                } else {
                    fmt(lo)
                },
                if r.samples.is_empty() {
                    String::new()
                } else {
                    fmt(hi)
                },
                r.samples.len(),
                r.goal.text(),
                m.and_then(|m| r.goal.met(m))
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
                r.samples
                    .iter()
                    .map(|v| fmt(*v))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        s
    }

    pub fn header_text(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.header {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s
    }
}

pub fn fmt(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
