//! Worlds kept as TOML files next to the tests that open them, with `{NAME}`
//! placeholders for what a test decides at run time (a JWKS, an account the
//! test names in its assertions).

/// `template` with every `{NAME}` of `vars` replaced by its value. Panics,
/// naming it, on a placeholder left without a value (TOML's inline tables are
/// `{ key = … }` and JSON's objects `{"key": …}`: neither is a placeholder).
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        let placeholder = format!("{{{name}}}");
        assert!(
            out.contains(&placeholder),
            "the world has no {placeholder} to fill"
        );
        out = out.replace(&placeholder, value);
    }
    if let Some(left) = placeholder_in(&out) {
        panic!("the world's {{{left}}} has no value");
    }
    out
}

/// The first `{NAME}` (NAME: a letter or `_`, then letters, digits, `_`).
fn placeholder_in(text: &str) -> Option<&str> {
    text.match_indices('{').find_map(|(i, _)| {
        let rest = &text[i + 1..];
        let end = rest.find('}')?;
        let name = &rest[..end];
        let mut chars = name.chars();
        let first = chars.next()?;
        ((first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
    })
}
