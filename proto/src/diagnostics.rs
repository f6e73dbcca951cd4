//! Diagnostics: errors and warnings returned to Terraform, pointing at the attribute they
//! concern so Terraform shows the right line of configuration.

use crate::wire::tfplugin6 as wire;

/// A path to an attribute: `AttributePath::root("tags").key_string("env")`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttributePath {
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Attribute(String),
    KeyString(String),
    KeyInt(i64),
}

impl AttributePath {
    pub fn root(name: impl Into<String>) -> AttributePath {
        AttributePath {
            steps: vec![PathStep::Attribute(name.into())],
        }
    }

    pub fn attribute(mut self, name: impl Into<String>) -> AttributePath {
        self.steps.push(PathStep::Attribute(name.into()));
        self
    }

    pub fn key_string(mut self, key: impl Into<String>) -> AttributePath {
        self.steps.push(PathStep::KeyString(key.into()));
        self
    }

    pub fn key_int(mut self, index: i64) -> AttributePath {
        self.steps.push(PathStep::KeyInt(index));
        self
    }

    pub(crate) fn to_wire(&self) -> wire::AttributePath {
        use wire::attribute_path::step::Selector;
        wire::AttributePath {
            steps: self
                .steps
                .iter()
                .map(|step| wire::attribute_path::Step {
                    selector: Some(match step {
                        PathStep::Attribute(name) => Selector::AttributeName(name.clone()),
                        PathStep::KeyString(key) => Selector::ElementKeyString(key.clone()),
                        PathStep::KeyInt(index) => Selector::ElementKeyInt(*index),
                    }),
                })
                .collect(),
        }
    }
}

/// As Terraform writes paths: `timeouts.create`, `tags["env"]`, `rules[0].name`.
impl std::fmt::Display for AttributePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Attribute(name) if i == 0 => write!(f, "{name}")?,
                PathStep::Attribute(name) => write!(f, ".{name}")?,
                PathStep::KeyString(key) => write!(f, "[{key:?}]")?,
                PathStep::KeyInt(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttributePath>,
}

/// The diagnostics an operation collected, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    fn push(
        &mut self,
        severity: Severity,
        attribute: Option<AttributePath>,
        summary: &str,
        detail: &str,
    ) {
        self.items.push(Diagnostic {
            severity,
            summary: summary.to_string(),
            detail: detail.to_string(),
            attribute,
        });
    }

    pub fn error(&mut self, summary: &str, detail: &str) {
        self.push(Severity::Error, None, summary, detail);
    }

    pub fn warning(&mut self, summary: &str, detail: &str) {
        self.push(Severity::Warning, None, summary, detail);
    }

    pub fn error_at(&mut self, attribute: AttributePath, summary: &str, detail: &str) {
        self.push(Severity::Error, Some(attribute), summary, detail);
    }

    pub fn warning_at(&mut self, attribute: AttributePath, summary: &str, detail: &str) {
        self.push(Severity::Warning, Some(attribute), summary, detail);
    }

    /// Diagnostics holding one error.
    pub fn from_error(summary: &str, detail: &str) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        diagnostics.error(summary, detail);
        diagnostics
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub(crate) fn to_wire(&self) -> Vec<wire::Diagnostic> {
        self.items
            .iter()
            .map(|d| wire::Diagnostic {
                severity: match d.severity {
                    Severity::Error => wire::diagnostic::Severity::Error,
                    Severity::Warning => wire::diagnostic::Severity::Warning,
                } as i32,
                summary: d.summary.clone(),
                detail: d.detail.clone(),
                attribute: d.attribute.as_ref().map(AttributePath::to_wire),
            })
            .collect()
    }
}
