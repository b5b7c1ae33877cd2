//! The XML of the query protocol's answers (STS, IAM), written element by element.

/// A tiny XML writer that escapes every text node.
pub struct Xml(String);

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    pub fn new() -> Self {
        Xml(String::new())
    }
    /// `tag` may carry attributes (`Name xmlns="…"`); only the name is closed.
    pub fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        for c in text.chars() {
            match c {
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '&' => self.0.push_str("&amp;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&apos;"),
                c => self.0.push(c),
            }
        }
        self.close(tag);
    }
    pub fn finish(self) -> String {
        self.0
    }
}
