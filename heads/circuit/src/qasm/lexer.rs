//! OpenQASM 2.0 tokens, each with the line and column where it starts.

use super::QasmError;

/// Where a token starts in the source (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub fn error(self, message: impl Into<String>) -> QasmError {
        QasmError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// An integer literal; kept apart from reals because indices and sizes must be integers.
    Int(u64),
    Real(f64),
    Str(String),
    Semicolon,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Arrow,
    EqEq,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(v) => format!("'{v}'"),
            Tok::Real(v) => format!("'{v}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Semicolon => "';'".into(),
            Tok::Comma => "','".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Arrow => "'->'".into(),
            Tok::EqEq => "'=='".into(),
            Tok::Plus => "'+'".into(),
            Tok::Minus => "'-'".into(),
            Tok::Star => "'*'".into(),
            Tok::Slash => "'/'".into(),
            Tok::Caret => "'^'".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

pub fn tokenize(src: &str) -> Result<Vec<Token>, QasmError> {
    let mut lexer = Lexer {
        chars: src.chars().collect(),
        i: 0,
        pos: Pos { line: 1, column: 1 },
    };
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.tok == Tok::Eof;
        out.push(token);
        if done {
            return Ok(out);
        }
    }
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    pos: Pos,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), QasmError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.pos;
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => return Err(start.error("unterminated comment '/*'")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, QasmError> {
        self.skip_trivia()?;
        let pos = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            ';' => Tok::Semicolon,
            ',' => Tok::Comma,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '+' => Tok::Plus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '^' => Tok::Caret,
            '-' if self.peek(0) == Some('>') => {
                self.bump();
                Tok::Arrow
            }
            '-' => Tok::Minus,
            '=' if self.peek(0) == Some('=') => {
                self.bump();
                Tok::EqEq
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match self.bump() {
                        Some('"') => break,
                        Some('\n') | None => return Err(pos.error("unterminated string")),
                        Some(ch) => s.push(ch),
                    }
                }
                Tok::Str(s)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(ch) = self.peek(0) {
                    if ch.is_ascii_alphanumeric() || ch == '_' {
                        s.push(ch);
                        self.bump();
                    } else {
                        break;
                    }
                }
                Tok::Ident(s)
            }
            c if c.is_ascii_digit()
                || (c == '.' && self.peek(0).is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number(c, pos)?
            }
            other => return Err(pos.error(format!("unexpected character '{other}'"))),
        };
        Ok(Token { tok, pos })
    }

    fn number(&mut self, first: char, pos: Pos) -> Result<Tok, QasmError> {
        let mut s = String::from(first);
        let mut is_real = first == '.';
        while let Some(ch) = self.peek(0) {
            if ch.is_ascii_digit() {
                s.push(ch);
            } else if ch == '.' && !is_real {
                is_real = true;
                s.push(ch);
            } else if (ch == 'e' || ch == 'E')
                && (self.peek(1).is_some_and(|d| d.is_ascii_digit())
                    || (matches!(self.peek(1), Some('+' | '-'))
                        && self.peek(2).is_some_and(|d| d.is_ascii_digit())))
            {
                is_real = true;
                s.push(ch);
                self.bump();
                let sign_or_digit = self.peek(0).unwrap_or('0');
                s.push(sign_or_digit);
            } else {
                break;
            }
            self.bump();
        }
        if is_real {
            s.parse::<f64>()
                .map(Tok::Real)
                .map_err(|_| pos.error(format!("malformed number '{s}'")))
        } else {
            s.parse::<u64>()
                .map(Tok::Int)
                .map_err(|_| pos.error(format!("integer '{s}' is too large")))
        }
    }
}
