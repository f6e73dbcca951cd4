//! What the engine has to tell the user: errors and warnings, in the order they arose, each
//! optionally about one argument. The resources turn them into Terraform's diagnostics.

/// How serious a [`Note`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One error or warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    /// The top-level argument it is about, if any.
    pub attribute: Option<&'static str>,
}

/// Errors and warnings, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes(pub Vec<Note>);

impl Notes {
    fn push(
        &mut self,
        severity: Severity,
        attribute: Option<&'static str>,
        summary: &str,
        detail: &str,
    ) {
        self.0.push(Note {
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

    pub fn error_at(&mut self, attribute: &'static str, summary: &str, detail: &str) {
        self.push(Severity::Error, Some(attribute), summary, detail);
    }

    pub fn warning_at(&mut self, attribute: &'static str, summary: &str, detail: &str) {
        self.push(Severity::Warning, Some(attribute), summary, detail);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|note| note.severity == Severity::Error)
    }
}
