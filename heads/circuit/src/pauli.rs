//! Pauli sums: observables such as `Z0 Z1 + 0.5*X2 - 0.25 * Y0*Y3`.

use num_complex::Complex;

/// One Pauli string, stored as what it does to a basis state |i>:
/// P|i> = i^y_count * (-1)^popcount(i & sign) * |i ^ flip>.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauliString {
    /// Qubits with X or Y.
    pub flip: u64,
    /// Qubits with Z or Y.
    pub sign: u64,
    pub y_count: u32,
}

impl PauliString {
    /// i^y_count: the phase every term of P|i> carries.
    pub fn phase(&self) -> Complex<f64> {
        [
            Complex::new(1.0, 0.0),
            Complex::new(0.0, 1.0),
            Complex::new(-1.0, 0.0),
            Complex::new(0.0, -1.0),
        ][(self.y_count % 4) as usize]
    }
}

/// Carried (in a checked job) as the text it was read from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PauliSum {
    pub terms: Vec<(f64, PauliString)>,
    /// The text it was read from, for reports.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("observable \"{text}\", at character {at}: {message}")]
pub struct PauliError {
    pub text: String,
    pub at: usize,
    pub message: String,
}

impl From<PauliSum> for String {
    fn from(sum: PauliSum) -> String {
        sum.text
    }
}

impl TryFrom<String> for PauliSum {
    type Error = PauliError;

    fn try_from(text: String) -> Result<Self, PauliError> {
        Self::parse(&text)
    }
}

impl PauliSum {
    /// Highest qubit the observable names, if any.
    pub fn max_qubit(&self) -> Option<usize> {
        self.terms
            .iter()
            .map(|(_, p)| p.flip | p.sign)
            .filter(|&m| m != 0)
            .map(|m| 63 - m.leading_zeros() as usize)
            .max()
    }

    /// Reads `[coef [*]] P<q> [[*] P<q>]... (+|-) ...`; `I` alone (or a bare number) is the identity.
    pub fn parse(text: &str) -> Result<PauliSum, PauliError> {
        let err = |at: usize, message: String| PauliError {
            text: text.to_string(),
            at: at + 1,
            message,
        };
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        let mut terms = Vec::new();
        let mut sign = 1.0;
        skip_ws(&mut i);
        if i < chars.len() && (chars[i] == '-' || chars[i] == '+') {
            sign = if chars[i] == '-' { -1.0 } else { 1.0 };
            i += 1;
        }
        loop {
            skip_ws(&mut i);
            let start = i;
            let mut coef = sign;
            // Optional coefficient.
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.'
                    || chars[i] == 'e' && i > start
                    || ((chars[i] == '-' || chars[i] == '+')
                        && i > start
                        && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            if i > start {
                let s: String = chars[start..i].iter().collect();
                coef *= s
                    .parse::<f64>()
                    .map_err(|_| err(start, format!("'{s}' is not a number")))?;
                skip_ws(&mut i);
                if i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
            }
            let mut p = PauliString {
                flip: 0,
                sign: 0,
                y_count: 0,
            };
            let mut factors = 0;
            loop {
                skip_ws(&mut i);
                if i < chars.len() && chars[i] == '*' && factors > 0 {
                    i += 1;
                    skip_ws(&mut i);
                }
                let Some(&c) = chars.get(i) else { break };
                let letter = c.to_ascii_uppercase();
                if !matches!(letter, 'X' | 'Y' | 'Z' | 'I') {
                    break;
                }
                let at = i;
                i += 1;
                let digits_start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if digits_start == i {
                    if letter == 'I' {
                        factors += 1;
                        continue;
                    }
                    return Err(err(
                        at,
                        format!("'{c}' needs a qubit number, as in {letter}0"),
                    ));
                }
                let q: usize = chars[digits_start..i]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .map_err(|_| err(digits_start, "qubit number too large".into()))?;
                if q >= 64 {
                    return Err(err(
                        digits_start,
                        format!("qubit {q} is out of range (at most 63)"),
                    ));
                }
                let bit = 1u64 << q;
                if (p.flip | p.sign) & bit != 0 {
                    return Err(err(at, format!("qubit {q} appears twice in one term")));
                }
                match letter {
                    'X' => p.flip |= bit,
                    'Z' => p.sign |= bit,
                    'Y' => {
                        p.flip |= bit;
                        p.sign |= bit;
                        p.y_count += 1;
                    }
                    _ => {}
                }
                factors += 1;
            }
            if factors == 0 && i == start {
                return Err(err(i, "expected a term such as 0.5*Z0 Z1".into()));
            }
            terms.push((coef, p));
            skip_ws(&mut i);
            match chars.get(i) {
                None => break,
                Some('+') => sign = 1.0,
                Some('-') => sign = -1.0,
                Some(&c) => {
                    return Err(err(
                        i,
                        format!("unexpected '{c}': terms are joined by + or -"),
                    ));
                }
            }
            i += 1;
        }
        Ok(PauliSum {
            terms,
            text: text.to_string(),
        })
    }
}
