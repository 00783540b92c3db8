//! OpenQASM 2.0 syntax: tokens to statements. Names are resolved later, in `lower`.

use super::QasmError;
use super::expr::{Expr, Func};
use super::lexer::{Pos, Tok, Token};

/// A qubit or bit operand: `q` (the whole register) or `q[3]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    pub name: String,
    pub index: Option<u64>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateCall {
    pub name: String,
    pub params: Vec<Expr>,
    pub args: Vec<Operand>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateDef {
    pub name: String,
    pub params: Vec<String>,
    pub qubits: Vec<String>,
    pub body: Vec<GateCall>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Include {
        path: String,
        pos: Pos,
    },
    Qreg {
        name: String,
        size: u64,
        pos: Pos,
    },
    Creg {
        name: String,
        size: u64,
        pos: Pos,
    },
    GateDef(GateDef),
    Apply(GateCall),
    Measure {
        qubit: Operand,
        bit: Operand,
        pos: Pos,
    },
    Reset {
        qubit: Operand,
        pos: Pos,
    },
    Barrier {
        operands: Vec<Operand>,
        pos: Pos,
    },
    If {
        creg: String,
        value: u64,
        body: Box<Stmt>,
        pos: Pos,
    },
}

/// A statement of a parameterised circuit (see `parameterised`).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamStmt {
    /// `input float[64] name;` (`size` None) or `input array[float[64], N] name;`.
    Input {
        name: String,
        size: Option<u64>,
        pos: Pos,
    },
    /// `qubit[N] name;`.
    Qubits {
        name: String,
        size: u64,
        pos: Pos,
    },
    Apply(GateCall),
}

/// Deepest nesting of parentheses, unary signs and `if` the parser follows; deeper input is refused
/// rather than risking the stack.
const MAX_NESTING: usize = 200;

impl Stmt {
    pub fn pos(&self) -> Pos {
        match self {
            Stmt::Include { pos, .. }
            | Stmt::Qreg { pos, .. }
            | Stmt::Creg { pos, .. }
            | Stmt::Measure { pos, .. }
            | Stmt::Reset { pos, .. }
            | Stmt::Barrier { pos, .. }
            | Stmt::If { pos, .. } => *pos,
            Stmt::GateDef(d) => d.pos,
            Stmt::Apply(c) => c.pos,
        }
    }
}

pub struct Parser {
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser {
    pub fn new(tokens: Vec<Token>) -> Self {
        Parser {
            tokens,
            i: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<Pos, QasmError> {
        let t = self.next();
        if t.tok == want {
            Ok(t.pos)
        } else {
            Err(t.pos.error(format!(
                "expected {} {context}, found {}",
                want.describe(),
                t.tok.describe()
            )))
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), QasmError> {
        let t = self.next();
        match t.tok {
            Tok::Ident(s) => Ok((s, t.pos)),
            other => Err(t
                .pos
                .error(format!("expected {what}, found {}", other.describe()))),
        }
    }

    fn int(&mut self, what: &str) -> Result<u64, QasmError> {
        let t = self.next();
        match t.tok {
            Tok::Int(v) => Ok(v),
            other => Err(t.pos.error(format!(
                "expected {what} (a non-negative integer), found {}",
                other.describe()
            ))),
        }
    }

    /// The version header, then statements to the end of the file. A program without the header
    /// is OpenQASM 2.0, as Qiskit reads it: published benchmark files leave it out.
    pub fn program(&mut self) -> Result<Vec<Stmt>, QasmError> {
        let (version, pos) = match &self.peek().tok {
            Tok::Ident(kw) if kw == "OPENQASM" => self.header("2.0")?,
            _ => (2.0, self.peek().pos),
        };
        if (3.0..4.0).contains(&version) {
            return Err(pos.error(format!(
                "OpenQASM {version} is not supported by this front end: it reads OpenQASM 2.0 \
                 circuits, and OpenQASM 3 only as the parameterised circuit of a hybrid model \
                 (a `hybrid_workflow` job whose chimera-train model has `kind: hybrid`)"
            )));
        }
        if !(2.0..3.0).contains(&version) {
            return Err(pos.error(format!(
                "OpenQASM {version} is not supported by this front end: it reads OpenQASM 2.0"
            )));
        }
        let mut stmts = Vec::new();
        while self.peek().tok != Tok::Eof {
            stmts.push(self.statement()?);
        }
        Ok(stmts)
    }

    /// `OPENQASM <version>;`: the version and where it stands.
    fn header(&mut self, expected: &str) -> Result<(f64, Pos), QasmError> {
        let first = self.next();
        match &first.tok {
            Tok::Ident(kw) if kw == "OPENQASM" => {}
            other => {
                return Err(first.pos.error(format!(
                    "expected 'OPENQASM {expected};' as the first statement, found {}",
                    other.describe()
                )));
            }
        }
        let version = self.next();
        let number = match version.tok {
            Tok::Real(v) => v,
            Tok::Int(v) => v as f64,
            other => {
                return Err(version.pos.error(format!(
                    "expected a version number after OPENQASM, found {}",
                    other.describe()
                )));
            }
        };
        self.expect(Tok::Semicolon, "after the OPENQASM version")?;
        Ok((number, version.pos))
    }

    /// A parameterised circuit (the OpenQASM 3 subset of `parameterised`): the version header,
    /// then declarations and gate applications to the end of the file.
    pub fn parameterised_program(&mut self) -> Result<Vec<ParamStmt>, QasmError> {
        let (version, pos) = self.header("3.0")?;
        if !(3.0..4.0).contains(&version) {
            return Err(pos.error(format!(
                "a parameterised circuit is OpenQASM 3 ('OPENQASM 3.0;'), not {version}"
            )));
        }
        let mut stmts = Vec::new();
        while self.peek().tok != Tok::Eof {
            if let Some(stmt) = self.parameterised_statement()? {
                stmts.push(stmt);
            }
        }
        Ok(stmts)
    }

    /// One statement of a parameterised circuit; `None` for those that do nothing to it
    /// (`include "stdgates.inc"`, `barrier`).
    fn parameterised_statement(&mut self) -> Result<Option<ParamStmt>, QasmError> {
        let (t, word) = self.statement_start()?;
        match word.as_str() {
            "include" => match self.include()? {
                (path, _) if path == "stdgates.inc" => Ok(None),
                (path, pos) => Err(pos.error(format!(
                    "only 'include \"stdgates.inc\";' is known here, not \"{path}\""
                ))),
            },
            "barrier" => {
                self.next();
                self.operand_list()?;
                self.expect(Tok::Semicolon, "after barrier")?;
                Ok(None)
            }
            "input" => {
                self.next();
                let size = self.input_type()?;
                let (name, _) = self.ident("the input's name")?;
                self.expect(Tok::Semicolon, "after the input declaration")?;
                Ok(Some(ParamStmt::Input {
                    name,
                    size,
                    pos: t.pos,
                }))
            }
            "qubit" | "qreg" => {
                self.next();
                // `qubit[4] q;`, `qubit q;` (one qubit) or OpenQASM 2's `qreg q[4];`.
                let before = if word == "qubit" {
                    self.optional_size()?
                } else {
                    None
                };
                let (name, _) = self.ident("a register name")?;
                let after = if word == "qreg" {
                    self.optional_size()?
                } else {
                    None
                };
                self.expect(Tok::Semicolon, "after the qubit declaration")?;
                Ok(Some(ParamStmt::Qubits {
                    name,
                    size: before.or(after).unwrap_or(1),
                    pos: t.pos,
                }))
            }
            "measure" | "bit" | "creg" | "reset" | "if" | "gate" | "opaque" | "output" | "for"
            | "while" | "def" | "let" | "const" => Err(t.pos.error(format!(
                "'{word}' is not part of a parameterised circuit: it holds `input` and \
                 `qubit` declarations and gates; the layer is read out by the model's \
                 `observables`, not by measurement"
            ))),
            _ => Ok(Some(ParamStmt::Apply(self.gate_call(false)?))),
        }
    }

    /// `[N]` if it comes next.
    fn optional_size(&mut self) -> Result<Option<u64>, QasmError> {
        if self.peek().tok != Tok::LBracket {
            return Ok(None);
        }
        self.next();
        let size = self.int("a register size")?;
        self.expect(Tok::RBracket, "after the register size")?;
        Ok(Some(size))
    }

    /// `float`, `float[64]`, `angle`, … (one value: `None`) or `array[float[64], N]` (N values).
    fn input_type(&mut self) -> Result<Option<u64>, QasmError> {
        let (kind, pos) = self.ident("the input's type (float or array[float[64], N])")?;
        match kind.as_str() {
            "float" | "angle" => {
                self.optional_size()?;
                Ok(None)
            }
            "array" => {
                self.expect(Tok::LBracket, "after array")?;
                let (element, element_pos) = self.ident("the array's element type")?;
                if !matches!(element.as_str(), "float" | "angle") {
                    return Err(element_pos.error(format!(
                        "an input array holds float or angle values, not {element}"
                    )));
                }
                self.optional_size()?;
                self.expect(Tok::Comma, "after the array's element type")?;
                let size = self.int("the array's length")?;
                self.expect(Tok::RBracket, "after the array's length")?;
                Ok(Some(size))
            }
            other => Err(pos.error(format!(
                "a circuit input is a float, an angle or an array of them, not {other}"
            ))),
        }
    }

    /// The next statement's first token, which must be a word, and that word.
    fn statement_start(&self) -> Result<(Token, String), QasmError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(word) => {
                let word = word.clone();
                Ok((t, word))
            }
            other => Err(t
                .pos
                .error(format!("expected a statement, found {}", other.describe()))),
        }
    }

    /// `include "PATH";`, its first word already seen: the path and where it stands.
    fn include(&mut self) -> Result<(String, Pos), QasmError> {
        self.next();
        let s = self.next();
        let Tok::Str(path) = s.tok else {
            return Err(s.pos.error(format!(
                "expected a file name in quotes after include, found {}",
                s.tok.describe()
            )));
        };
        self.expect(Tok::Semicolon, "after include")?;
        Ok((path, s.pos))
    }

    fn statement(&mut self) -> Result<Stmt, QasmError> {
        let (t, word) = self.statement_start()?;
        match word.as_str() {
            "include" => {
                let (path, _) = self.include()?;
                Ok(Stmt::Include { path, pos: t.pos })
            }
            "qreg" | "creg" => {
                self.next();
                let (name, _) = self.ident("a register name")?;
                self.expect(Tok::LBracket, "after the register name")?;
                let size = self.int("a register size")?;
                self.expect(Tok::RBracket, "after the register size")?;
                self.expect(Tok::Semicolon, "after the register declaration")?;
                if word == "qreg" {
                    Ok(Stmt::Qreg {
                        name,
                        size,
                        pos: t.pos,
                    })
                } else {
                    Ok(Stmt::Creg {
                        name,
                        size,
                        pos: t.pos,
                    })
                }
            }
            "gate" => self.gate_def(),
            "opaque" => Err(t.pos.error(
                "opaque gates are not supported: the simulator needs a definition; \
                 write it as 'gate NAME(params) qubits { ... }'",
            )),
            "measure" => {
                self.next();
                let qubit = self.operand()?;
                self.expect(Tok::Arrow, "in measure (measure q -> c;)")?;
                let bit = self.operand()?;
                self.expect(Tok::Semicolon, "after measure")?;
                Ok(Stmt::Measure {
                    qubit,
                    bit,
                    pos: t.pos,
                })
            }
            "reset" => {
                self.next();
                let qubit = self.operand()?;
                self.expect(Tok::Semicolon, "after reset")?;
                Ok(Stmt::Reset { qubit, pos: t.pos })
            }
            "barrier" => {
                self.next();
                let operands = self.operand_list()?;
                self.expect(Tok::Semicolon, "after barrier")?;
                Ok(Stmt::Barrier {
                    operands,
                    pos: t.pos,
                })
            }
            "if" => {
                self.next();
                self.expect(Tok::LParen, "after if")?;
                let (creg, _) = self.ident("a classical register name")?;
                self.expect(Tok::EqEq, "in the if condition (if (c == n))")?;
                let value = self.int("the value to compare with")?;
                self.expect(Tok::RParen, "after the if condition")?;
                let inner = self.peek().clone();
                let body = self.nested(Self::statement)?;
                match body {
                    Stmt::Apply(_) | Stmt::Measure { .. } | Stmt::Reset { .. } => {}
                    _ => {
                        return Err(inner
                            .pos
                            .error("only a gate, measure or reset may follow if (...)"));
                    }
                }
                Ok(Stmt::If {
                    creg,
                    value,
                    body: Box::new(body),
                    pos: t.pos,
                })
            }
            _ => Ok(Stmt::Apply(self.gate_call(false)?)),
        }
    }

    fn gate_def(&mut self) -> Result<Stmt, QasmError> {
        let pos = self.next().pos;
        let (name, _) = self.ident("a gate name")?;
        let mut params = Vec::new();
        if self.peek().tok == Tok::LParen {
            self.next();
            if self.peek().tok != Tok::RParen {
                loop {
                    params.push(self.ident("a parameter name")?.0);
                    if self.peek().tok == Tok::Comma {
                        self.next();
                    } else {
                        break;
                    }
                }
            }
            self.expect(Tok::RParen, "after the gate's parameters")?;
        }
        let mut qubits = vec![self.ident("a qubit argument name")?.0];
        while self.peek().tok == Tok::Comma {
            self.next();
            qubits.push(self.ident("a qubit argument name")?.0);
        }
        self.expect(Tok::LBrace, "to open the gate body")?;
        let mut body = Vec::new();
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::RBrace => {
                    self.next();
                    break;
                }
                Tok::Ident(w) if w == "barrier" => {
                    self.next();
                    self.operand_list()?;
                    self.expect(Tok::Semicolon, "after barrier")?;
                }
                Tok::Ident(w)
                    if matches!(
                        w.as_str(),
                        "measure" | "reset" | "if" | "qreg" | "creg" | "gate" | "opaque"
                    ) =>
                {
                    return Err(t.pos.error(format!(
                        "'{w}' is not allowed inside a gate body: a gate body holds only gate applications and barriers"
                    )));
                }
                Tok::Eof => {
                    return Err(t
                        .pos
                        .error(format!("gate '{name}' body is not closed with '}}'")));
                }
                _ => body.push(self.gate_call(true)?),
            }
        }
        Ok(Stmt::GateDef(GateDef {
            name,
            params,
            qubits,
            body,
            pos,
        }))
    }

    fn gate_call(&mut self, in_gate_body: bool) -> Result<GateCall, QasmError> {
        let (name, pos) = self.ident("a gate name")?;
        let mut params = Vec::new();
        if self.peek().tok == Tok::LParen {
            self.next();
            if self.peek().tok != Tok::RParen {
                loop {
                    params.push(self.expr()?);
                    if self.peek().tok == Tok::Comma {
                        self.next();
                    } else {
                        break;
                    }
                }
            }
            self.expect(Tok::RParen, "after the gate's parameters")?;
        }
        let args = self.operand_list()?;
        if in_gate_body && let Some(a) = args.iter().find(|a| a.index.is_some()) {
            return Err(a.pos.error(format!(
                "inside a gate body, qubit arguments are plain names; '{}[{}]' is indexed",
                a.name,
                a.index.unwrap_or_default()
            )));
        }
        self.expect(Tok::Semicolon, &format!("after the arguments of '{name}'"))?;
        Ok(GateCall {
            name,
            params,
            args,
            pos,
        })
    }

    fn operand_list(&mut self) -> Result<Vec<Operand>, QasmError> {
        let mut out = vec![self.operand()?];
        while self.peek().tok == Tok::Comma {
            self.next();
            out.push(self.operand()?);
        }
        Ok(out)
    }

    fn operand(&mut self) -> Result<Operand, QasmError> {
        let (name, pos) = self.ident("a register or qubit name")?;
        let index = if self.peek().tok == Tok::LBracket {
            self.next();
            let i = self.int("an index")?;
            self.expect(Tok::RBracket, "after the index")?;
            Some(i)
        } else {
            None
        };
        Ok(Operand { name, index, pos })
    }

    fn expr(&mut self) -> Result<Expr, QasmError> {
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => '+',
                Tok::Minus => '-',
                _ => return Ok(lhs),
            };
            self.next();
            let rhs = self.term()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn term(&mut self) -> Result<Expr, QasmError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => '*',
                Tok::Slash => '/',
                _ => return Ok(lhs),
            };
            self.next();
            let rhs = self.unary()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, QasmError>,
    ) -> Result<T, QasmError> {
        if self.depth >= MAX_NESTING {
            return Err(self
                .peek()
                .pos
                .error(format!("nested more than {MAX_NESTING} levels deep")));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn unary(&mut self) -> Result<Expr, QasmError> {
        self.nested(Self::unary_inner)
    }

    fn unary_inner(&mut self) -> Result<Expr, QasmError> {
        match self.peek().tok {
            Tok::Minus => {
                self.next();
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Tok::Plus => {
                self.next();
                self.unary()
            }
            _ => self.power(),
        }
    }

    /// `^` binds tighter than unary minus and associates to the right: `-2^-1` is `-(2^(-1))`.
    fn power(&mut self) -> Result<Expr, QasmError> {
        let base = self.atom()?;
        if self.peek().tok == Tok::Caret {
            self.next();
            let exponent = self.unary()?;
            return Ok(Expr::Binary('^', Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, QasmError> {
        let t = self.next();
        match t.tok {
            Tok::Int(v) => Ok(Expr::Num(v as f64)),
            Tok::Real(v) => Ok(Expr::Num(v)),
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(Tok::RParen, "to close '('")?;
                Ok(e)
            }
            Tok::Ident(name) if name == "pi" => Ok(Expr::Num(std::f64::consts::PI)),
            Tok::Ident(name) if self.peek().tok == Tok::LParen => {
                let func = Func::from_name(&name).ok_or_else(|| {
                    t.pos.error(format!(
                        "unknown function '{name}': parameters may use sin, cos, tan, asin, acos, atan, exp, ln and sqrt"
                    ))
                })?;
                self.next();
                let arg = self.expr()?;
                self.expect(Tok::RParen, &format!("to close {name}("))?;
                Ok(Expr::Call(func, Box::new(arg)))
            }
            Tok::Ident(name) if self.peek().tok == Tok::LBracket => {
                self.next();
                let index = self.int("an index")?;
                self.expect(Tok::RBracket, "after the index")?;
                Ok(Expr::Element(name, index, t.pos))
            }
            Tok::Ident(name) => Ok(Expr::Param(name, t.pos)),
            other => Err(t.pos.error(format!(
                "expected a number, 'pi', a parameter or '(', found {}",
                other.describe()
            ))),
        }
    }
}
