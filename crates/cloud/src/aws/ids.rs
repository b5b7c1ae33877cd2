//! The random identifiers AWS hands out: access key ids (`A-Z2-7`), secret
//! ARN suffixes (alphanumerics) and request, version and credential ids (UUIDv4).

use crate::crypto;

/// `n` random characters from `A-Z2-7` (as AWS key ids look).
pub fn random_upper(n: usize) -> Result<String, crypto::CryptoError> {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let b = crypto::random_bytes::<32>()?;
    Ok(b.iter()
        .take(n)
        .map(|x| A[(*x & 31) as usize] as char)
        .collect())
}

/// `n` random alphanumerics (a secret ARN's suffix).
pub fn random_alnum(n: usize) -> Result<String, crypto::CryptoError> {
    const A: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let b = crypto::random_bytes::<32>()?;
    Ok(b.iter()
        .take(n)
        .map(|x| A[(*x as usize) % 62] as char)
        .collect())
}

pub fn uuid4() -> Result<String, crypto::CryptoError> {
    let mut b = crypto::random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crypto::hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}
