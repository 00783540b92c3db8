//! Statements to the circuit IR: registers resolved, gate definitions expanded, operands broadcast.

use super::QasmError;
use super::lexer::Pos;
use super::parser::{GateCall, GateDef, Operand, Stmt};
use super::qelib1::{self, Builtin};
use crate::circuit::{Circuit, Condition, Gate, Op, Register};
use std::collections::HashMap;
use std::rc::Rc;

/// Most qubits, and most classical bits, a program may declare. Far above what any backend can
/// simulate (the backends refuse by memory), and low enough that broadcasting stays cheap.
pub const MAX_DECLARED_BITS: u64 = 4096;
/// Most operations a program may expand to, so that nested definitions cannot exhaust memory.
pub const MAX_OPERATIONS: usize = 4_000_000;
/// Most gate definitions that may be open at once, each called from the one before. Expansion
/// recurses once per level; a chain of thousands (a document of a few hundred KB) would overflow
/// a thread's stack and abort the process that reads it. qelib1's own definitions nest four deep.
pub const MAX_GATE_NESTING: usize = 200;

pub fn lower(stmts: &[Stmt]) -> Result<Circuit, QasmError> {
    let mut l = Lowerer::default();
    for stmt in stmts {
        l.statement(stmt)?;
    }
    Ok(l.circuit)
}

/// What [`check`] finds of a program that lowers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub num_qubits: usize,
    /// The operations it expands to.
    pub operations: usize,
}

/// Lowers the program as [`lower`] does, with the same refusals, but keeps no operation: a check
/// takes memory for the program's text and definitions, not for the millions of operations a few
/// lines of nested definitions can expand to.
pub fn check(stmts: &[Stmt]) -> Result<Checked, QasmError> {
    let mut l = Lowerer {
        count_only: true,
        ..Lowerer::default()
    };
    for stmt in stmts {
        l.statement(stmt)?;
    }
    Ok(Checked {
        num_qubits: l.circuit.num_qubits,
        operations: l.operations,
    })
}

#[derive(Default)]
pub(super) struct Lowerer {
    circuit: Circuit,
    qregs: HashMap<String, Register>,
    cregs: HashMap<String, Register>,
    /// The program's gate definitions by name, as indices into `defined`.
    gates: HashMap<String, usize>,
    /// A body's calls refer to earlier definitions by index, not by `Rc`: a chain of thousands of
    /// definitions, each holding the one before, would be dropped recursively and overflow the
    /// stack.
    defined: Vec<Rc<DefinedGate>>,
    qelib1: bool,
    /// Operations emitted so far.
    operations: usize,
    /// Count the operations without keeping them ([`check`]).
    count_only: bool,
    /// The statement being lowered, blamed when its expansion grows too large.
    stmt_pos: Pos,
}

impl Lowerer {
    fn statement(&mut self, stmt: &Stmt) -> Result<(), QasmError> {
        self.stmt_pos = stmt.pos();
        match stmt {
            Stmt::Include { path, pos } => {
                if path != "qelib1.inc" {
                    return Err(pos.error(format!(
                        "cannot include \"{path}\": only \"qelib1.inc\" is built in; \
                         paste the file's gate definitions into the program instead"
                    )));
                }
                self.qelib1 = true;
                Ok(())
            }
            Stmt::Qreg { name, size, pos } => self.declare(name, *size, *pos, true),
            Stmt::Creg { name, size, pos } => self.declare(name, *size, *pos, false),
            Stmt::GateDef(def) => self.define(def),
            Stmt::Apply(call) => self.apply(call, None),
            Stmt::Measure { qubit, bit, pos } => self.measure(qubit, bit, *pos, None),
            Stmt::Reset { qubit, .. } => {
                for q in self.qubits(qubit)? {
                    self.push(Op::Reset { qubit: q }, None)?;
                }
                Ok(())
            }
            Stmt::Barrier { operands, .. } => {
                for operand in operands {
                    self.qubits(operand)?;
                }
                Ok(())
            }
            Stmt::If {
                creg,
                value,
                body,
                pos,
            } => {
                let reg = self.cregs.get(creg).ok_or_else(|| {
                    pos.error(format!(
                        "if (...) needs a classical register; '{creg}' is not one"
                    ))
                })?;
                let condition = Condition {
                    start: reg.start,
                    size: reg.size,
                    value: *value,
                };
                match body.as_ref() {
                    Stmt::Apply(call) => self.apply(call, Some(condition)),
                    Stmt::Measure { qubit, bit, pos } => {
                        self.measure(qubit, bit, *pos, Some(condition))
                    }
                    Stmt::Reset { qubit, .. } => {
                        for q in self.qubits(qubit)? {
                            self.push(Op::Reset { qubit: q }, Some(condition))?;
                        }
                        Ok(())
                    }
                    // The parser admits nothing else after `if (...)`.
                    _ => Err(pos.error("only a gate, measure or reset may follow if (...)")),
                }
            }
        }
    }

    pub(super) fn declare(
        &mut self,
        name: &str,
        size: u64,
        pos: Pos,
        quantum: bool,
    ) -> Result<(), QasmError> {
        if self.qregs.contains_key(name) || self.cregs.contains_key(name) {
            return Err(pos.error(format!("register '{name}' is already declared")));
        }
        if size == 0 {
            return Err(pos.error(format!("register '{name}' has size 0")));
        }
        let (count, kind) = if quantum {
            (&mut self.circuit.num_qubits, "qubits")
        } else {
            (&mut self.circuit.num_clbits, "classical bits")
        };
        if *count as u64 + size > MAX_DECLARED_BITS {
            return Err(pos.error(format!(
                "register '{name}' brings the program to more than {MAX_DECLARED_BITS} {kind}"
            )));
        }
        let reg = Register {
            name: name.to_string(),
            start: *count,
            size: size as usize,
        };
        *count += size as usize;
        if quantum {
            self.circuit.qregs.push(reg.clone());
            self.qregs.insert(name.to_string(), reg);
        } else {
            self.circuit.cregs.push(reg.clone());
            self.cregs.insert(name.to_string(), reg);
        }
        Ok(())
    }

    /// A gate this program can call by `name`: its own definition first, then the built-in ones.
    fn lookup(&self, name: &str) -> Option<Callee> {
        if let Some(&index) = self.gates.get(name) {
            return Some(Callee::Defined(index));
        }
        qelib1::primitive(name)
            .or_else(|| {
                if self.qelib1 {
                    qelib1::qelib1(name)
                } else {
                    None
                }
            })
            .map(Callee::Builtin)
    }

    /// How many parameters and qubits `callee` takes.
    fn arity(&self, callee: &Callee) -> (usize, usize) {
        match callee {
            Callee::Builtin(b) => (b.params, b.qubits),
            Callee::Defined(index) => {
                let def = &self.defined[*index].def;
                (def.params.len(), def.qubits.len())
            }
        }
    }

    fn unknown_gate(&self, name: &str, pos: Pos) -> QasmError {
        if !self.qelib1 && qelib1::qelib1(name).is_some() {
            pos.error(format!(
                "gate '{name}' is not defined: add 'include \"qelib1.inc\";' after the OPENQASM line"
            ))
        } else {
            pos.error(format!(
                "unknown gate '{name}': define it with 'gate {name} ... {{ ... }}' before use"
            ))
        }
    }

    fn define(&mut self, def: &GateDef) -> Result<(), QasmError> {
        let name = &def.name;
        if qelib1::primitive(name).is_some() || self.gates.contains_key(name) {
            return Err(def.pos.error(format!("gate '{name}' is already defined")));
        }
        if let Some(dup) = first_duplicate(&def.params) {
            return Err(def
                .pos
                .error(format!("gate '{name}' names parameter '{dup}' twice")));
        }
        if let Some(dup) = first_duplicate(&def.qubits) {
            return Err(def
                .pos
                .error(format!("gate '{name}' names qubit argument '{dup}' twice")));
        }
        // Check the body now, so that errors point at the definition rather than at a later call,
        // and bind each call to the gate its name means here: a later definition may shadow a
        // qelib1 gate, and must not change (nor break the arity of) a body read before it.
        let mut body = Vec::with_capacity(def.body.len());
        for call in &def.body {
            let callee = self
                .lookup(&call.name)
                .ok_or_else(|| self.unknown_gate(&call.name, call.pos))?;
            let (params, qubits) = self.arity(&callee);
            check_arity(call, params, qubits)?;
            for e in &call.params {
                e.eval(&|p| def.params.iter().any(|d| d == p).then_some(0.0))?;
            }
            let mut arg_slots = Vec::with_capacity(call.args.len());
            for a in &call.args {
                let slot = def
                    .qubits
                    .iter()
                    .position(|d| *d == a.name)
                    .ok_or_else(|| {
                        a.pos.error(format!(
                            "'{}' is not a qubit argument of gate '{name}'",
                            a.name
                        ))
                    })?;
                arg_slots.push(slot);
            }
            if let Some(dup) =
                first_duplicate(&call.args.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
            {
                return Err(call
                    .pos
                    .error(format!("qubit '{dup}' is used twice in '{}'", call.name)));
            }
            body.push(BoundCall { callee, arg_slots });
        }
        let operations = body.iter().fold(0u64, |sum, call| {
            sum.saturating_add(self.operations_of(&call.callee))
        });
        let gate = DefinedGate {
            def: def.clone(),
            body,
            operations,
        };
        self.gates.insert(name.clone(), self.defined.len());
        self.defined.push(Rc::new(gate));
        Ok(())
    }

    fn apply(&mut self, call: &GateCall, condition: Option<Condition>) -> Result<(), QasmError> {
        let callee = self
            .lookup(&call.name)
            .ok_or_else(|| self.unknown_gate(&call.name, call.pos))?;
        let (nparams, nqubits) = self.arity(&callee);
        check_arity(call, nparams, nqubits)?;
        let params = constant_params(call)?;
        let groups = self.broadcast(&call.args, &call.name)?;
        // Refused before expanding: a few lines can define a gate of billions of operations.
        let operations = self
            .operations_of(&callee)
            .saturating_mul(groups.len() as u64)
            .saturating_add(self.operations as u64);
        if operations > MAX_OPERATIONS as u64 {
            return Err(self.too_many_operations());
        }
        for qubits in groups {
            self.expand(&callee, &params, &qubits, condition, 1)?;
        }
        Ok(())
    }

    /// The operations one call of `callee` expands to.
    fn operations_of(&self, callee: &Callee) -> u64 {
        match callee {
            Callee::Builtin(_) => 1,
            Callee::Defined(index) => self.defined[*index].operations,
        }
    }

    fn too_many_operations(&self) -> QasmError {
        self.stmt_pos.error(format!(
            "the program expands to more than {MAX_OPERATIONS} operations"
        ))
    }

    /// Emits the gate, expanding definitions down to built-in gates.
    fn expand(
        &mut self,
        callee: &Callee,
        params: &[f64],
        qubits: &[usize],
        condition: Option<Condition>,
        depth: usize,
    ) -> Result<(), QasmError> {
        match callee {
            Callee::Builtin(_) if self.count_only => self.count(),
            Callee::Builtin(b) => self.push(
                Op::Gate(Gate::new(qubits.to_vec(), (b.matrix)(params))),
                condition,
            ),
            Callee::Defined(index) => {
                let gate = Rc::clone(&self.defined[*index]);
                let def = &gate.def;
                for (call, bound) in def.body.iter().zip(&gate.body) {
                    let lookup =
                        |p: &str| def.params.iter().position(|d| d == p).map(|i| params[i]);
                    let inner_params = call
                        .params
                        .iter()
                        .map(|e| e.eval(&lookup))
                        .collect::<Result<Vec<_>, _>>()?;
                    let inner_qubits: Vec<usize> =
                        bound.arg_slots.iter().map(|&slot| qubits[slot]).collect();
                    if depth >= MAX_GATE_NESTING && matches!(bound.callee, Callee::Defined(_)) {
                        return Err(call.pos.error(format!(
                            "gate definitions nested more than {MAX_GATE_NESTING} deep (this \
                             call to '{}' is one level too many): define the gate with fewer \
                             levels",
                            call.name
                        )));
                    }
                    self.expand(
                        &bound.callee,
                        &inner_params,
                        &inner_qubits,
                        condition,
                        depth + 1,
                    )?;
                }
                Ok(())
            }
        }
    }

    fn measure(
        &mut self,
        qubit: &Operand,
        bit: &Operand,
        pos: Pos,
        condition: Option<Condition>,
    ) -> Result<(), QasmError> {
        let qs = self.qubits(qubit)?;
        let cs = self.clbits(bit)?;
        if qubit.index.is_some() != bit.index.is_some() || qs.len() != cs.len() {
            return Err(pos.error(format!(
                "measure needs a qubit and a bit, or two registers of the same size; got {} qubit(s) and {} bit(s)",
                qs.len(),
                cs.len()
            )));
        }
        for (q, c) in qs.into_iter().zip(cs) {
            self.push(Op::Measure { qubit: q, clbit: c }, condition)?;
        }
        Ok(())
    }

    /// Counts one more operation, refusing the one past the limit.
    fn count(&mut self) -> Result<(), QasmError> {
        if self.operations >= MAX_OPERATIONS {
            return Err(self.too_many_operations());
        }
        self.operations += 1;
        Ok(())
    }

    fn push(&mut self, op: Op, condition: Option<Condition>) -> Result<(), QasmError> {
        self.count()?;
        if self.count_only {
            return Ok(());
        }
        self.circuit.ops.push(match condition {
            Some(condition) => Op::If {
                condition,
                op: Box::new(op),
            },
            None => op,
        });
        Ok(())
    }

    fn resolve(&self, operand: &Operand, quantum: bool) -> Result<Vec<usize>, QasmError> {
        let (regs, other, kind) = if quantum {
            (&self.qregs, &self.cregs, "quantum")
        } else {
            (&self.cregs, &self.qregs, "classical")
        };
        let reg = regs.get(&operand.name).ok_or_else(|| {
            if other.contains_key(&operand.name) {
                operand
                    .pos
                    .error(format!("'{}' is not a {kind} register", operand.name))
            } else {
                operand
                    .pos
                    .error(format!("unknown register '{}'", operand.name))
            }
        })?;
        match operand.index {
            None => Ok((reg.start..reg.start + reg.size).collect()),
            Some(i) if (i as usize) < reg.size && i < MAX_DECLARED_BITS => {
                Ok(vec![reg.start + i as usize])
            }
            Some(i) => Err(operand.pos.error(format!(
                "index {i} is out of range for register '{}' of size {}",
                operand.name, reg.size
            ))),
        }
    }

    fn qubits(&self, operand: &Operand) -> Result<Vec<usize>, QasmError> {
        self.resolve(operand, true)
    }

    fn clbits(&self, operand: &Operand) -> Result<Vec<usize>, QasmError> {
        self.resolve(operand, false)
    }

    /// `cx a, b` over registers of size n is n gates; single qubits repeat alongside registers.
    pub(super) fn broadcast(
        &self,
        args: &[Operand],
        gate: &str,
    ) -> Result<Vec<Vec<usize>>, QasmError> {
        let resolved = args
            .iter()
            .map(|a| self.qubits(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut size = None;
        for (a, r) in args.iter().zip(&resolved) {
            if a.index.is_none() {
                match size {
                    None => size = Some(r.len()),
                    Some(n) if n != r.len() => {
                        return Err(a.pos.error(format!(
                            "registers of different sizes in '{gate}': '{}' has {} qubits, another has {n}",
                            a.name,
                            r.len()
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut out = Vec::new();
        for i in 0..size.unwrap_or(1) {
            let qubits: Vec<usize> = resolved
                .iter()
                .map(|r| if r.len() == 1 { r[0] } else { r[i] })
                .collect();
            if let Some(j) = (1..qubits.len()).find(|&j| qubits[..j].contains(&qubits[j])) {
                return Err(args[j].pos.error(format!(
                    "qubit {} is used twice in '{gate}'",
                    self.describe_qubit(qubits[j])
                )));
            }
            out.push(qubits);
        }
        Ok(out)
    }

    pub(super) fn qubit_count(&self) -> usize {
        self.circuit.num_qubits
    }

    fn describe_qubit(&self, q: usize) -> String {
        self.circuit
            .qregs
            .iter()
            .find(|r| (r.start..r.start + r.size).contains(&q))
            .map(|r| format!("{}[{}]", r.name, q - r.start))
            .unwrap_or_else(|| q.to_string())
    }
}

enum Callee {
    Builtin(Builtin),
    /// An index into `Lowerer::defined`.
    Defined(usize),
}

/// A program's gate definition with the calls of its body bound when it was read.
struct DefinedGate {
    def: GateDef,
    /// One per call of `def.body`, in order.
    body: Vec<BoundCall>,
    /// The operations one call expands to (saturating).
    operations: u64,
}

struct BoundCall {
    callee: Callee,
    /// For each qubit argument of the call, its position among the definition's qubit arguments.
    arg_slots: Vec<usize>,
}

/// The values of a call's parameters, which may use only numbers, `pi` and functions.
pub(super) fn constant_params(call: &GateCall) -> Result<Vec<f64>, QasmError> {
    let mut params = Vec::with_capacity(call.params.len());
    for e in &call.params {
        let v = e.eval(&|_| None)?;
        if !v.is_finite() {
            return Err(call.pos.error(format!(
                "a parameter of '{}' evaluates to {v}, not a finite number",
                call.name
            )));
        }
        params.push(v);
    }
    Ok(params)
}

pub(super) fn check_arity(call: &GateCall, params: usize, qubits: usize) -> Result<(), QasmError> {
    if call.params.len() != params {
        return Err(call.pos.error(format!(
            "gate '{}' takes {params} parameter(s), {} given",
            call.name,
            call.params.len()
        )));
    }
    if call.args.len() != qubits {
        return Err(call.pos.error(format!(
            "gate '{}' acts on {qubits} qubit(s), {} given",
            call.name,
            call.args.len()
        )));
    }
    Ok(())
}

fn first_duplicate(names: &[String]) -> Option<&String> {
    names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
        .map(|(_, n)| n)
}
