//! Parameter expressions: `pi/4`, `-theta*2`, `sin(0.3)+1.5`, `2^-1`.

use super::QasmError;
use super::lexer::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Exp,
    Ln,
    Sqrt,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "asin" => Func::Asin,
            "acos" => Func::Acos,
            "atan" => Func::Atan,
            "exp" => Func::Exp,
            "ln" => Func::Ln,
            "sqrt" => Func::Sqrt,
            _ => return None,
        })
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Asin => x.asin(),
            Func::Acos => x.acos(),
            Func::Atan => x.atan(),
            Func::Exp => x.exp(),
            Func::Ln => x.ln(),
            Func::Sqrt => x.sqrt(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    /// A gate parameter, resolved against the enclosing gate definition.
    Param(String, Pos),
    /// An element of an array input, `theta[3]` (parameterised circuits only).
    Element(String, u64, Pos),
    Neg(Box<Expr>),
    Binary(char, Box<Expr>, Box<Expr>),
    Call(Func, Box<Expr>),
}

impl Expr {
    /// Evaluates with `lookup` giving the value of a named parameter, or `None` if there is no such name.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<f64>) -> Result<f64, QasmError> {
        Ok(match self {
            Expr::Num(v) => *v,
            Expr::Param(name, pos) => lookup(name).ok_or_else(|| {
                pos.error(format!(
                    "unknown parameter '{name}': only 'pi' and the enclosing gate's parameters may be used"
                ))
            })?,
            Expr::Element(name, index, pos) => {
                return Err(pos.error(format!(
                    "unknown parameter '{name}[{index}]': only 'pi' and the enclosing gate's \
                     parameters may be used"
                )));
            }
            Expr::Neg(e) => -e.eval(lookup)?,
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(lookup)?, b.eval(lookup)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    '/' => a / b,
                    _ => a.powf(b),
                }
            }
            Expr::Call(f, e) => f.apply(e.eval(lookup)?),
        })
    }
}
