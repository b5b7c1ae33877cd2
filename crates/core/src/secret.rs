//! A value that must never be printed. `Secret<T>` has a `Debug` impl that prints
//! `[redacted]`, no `Display`, and wipes its memory when dropped. Reading the value
//! takes an explicit call to [`Secret::expose`], which makes every place that touches
//! plaintext easy to find with grep.

use std::fmt;
use zeroize::Zeroize;

/// A secret value: redacted in `Debug`, zeroised on drop.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The plaintext. Every call site is a place where a secret leaves its box.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Mutable access, for APIs that fill a buffer in place.
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Secret(self.0.clone())
    }
}

impl<T: Zeroize + Default> Default for Secret<T> {
    fn default() -> Self {
        Secret(T::default())
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<Vec<u8>> for Secret<Vec<u8>> {
    fn from(v: Vec<u8>) -> Self {
        Secret(v)
    }
}

impl Secret<Vec<u8>> {
    /// Length in bytes; safe to log.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn bytes_len_without_exposing() {
        let s: Secret<Vec<u8>> = vec![1u8, 2, 3].into();
        assert_eq!(s.len(), 3);
        assert!(!format!("{s:?}").contains('1'));
    }
}
