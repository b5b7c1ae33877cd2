//! What bounds the language's work, in one place: the fixed limits that keep
//! a hostile expression or input from exhausting the stack or memory
//! (nesting depth, produced string and list sizes, compiled regex size), the
//! per-program [`Limits`] a caller chooses (longest text, step budget), and
//! the `Budget` that meters evaluation steps against them.
//!
//! Size limits of a particular use (Google's 2048 characters for a mapping,
//! 4096 for a condition) belong to that use and arrive through [`Limits`].

use super::error::Fail;

/// Deepest expression tree accepted (parenthesised, chained or nested).
pub const MAX_DEPTH: u32 = 100;
/// Largest string an expression may produce (concatenation, case mapping).
pub const MAX_STRING: usize = 64 * 1024;
/// Largest list an expression may produce (literal, concatenation, split, map).
pub const MAX_LIST: usize = 4096;
/// Evaluation steps (nodes visited, comprehension iterations) per evaluation,
/// unless the caller states another budget.
pub const MAX_STEPS: u64 = 200_000;
/// Compiled-regex size bound for `matches`.
pub const MAX_REGEX_NFA: usize = 1 << 20;

/// The caller's limits for one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest expression accepted, in characters.
    pub max_chars: usize,
    /// Evaluation steps one evaluation may spend.
    pub max_steps: u64,
}

impl Limits {
    /// At most `max_chars` characters, evaluated within [`MAX_STEPS`].
    pub const fn new(max_chars: usize) -> Limits {
        Limits {
            max_chars,
            max_steps: MAX_STEPS,
        }
    }
}

/// Steps spent by one evaluation.
pub(super) struct Budget {
    spent: u64,
    max: u64,
}

impl Budget {
    pub fn new(max: u64) -> Budget {
        Budget { spent: 0, max }
    }

    /// Counts `n` units of work; fails once the budget is spent.
    pub fn charge(&mut self, n: u64, pos: usize) -> Result<(), Fail> {
        self.spent = self.spent.saturating_add(n);
        if self.spent > self.max {
            return Err(Fail::Exhausted { pos });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_fails_past_its_last_step_and_saturates() {
        let mut b = Budget::new(3);
        b.charge(2, 0).unwrap();
        b.charge(1, 0).unwrap();
        assert!(matches!(b.charge(1, 7), Err(Fail::Exhausted { pos: 7 })));
        let mut b = Budget::new(MAX_STEPS);
        assert!(matches!(b.charge(u64::MAX, 0), Err(Fail::Exhausted { .. })));
        assert!(matches!(b.charge(u64::MAX, 0), Err(Fail::Exhausted { .. })));
    }

    #[test]
    fn limits_default_to_the_step_budget() {
        assert_eq!(
            Limits::new(10),
            Limits {
                max_chars: 10,
                max_steps: 200_000
            }
        );
    }
}
