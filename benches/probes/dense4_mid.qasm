OPENQASM 2.0;
include "qelib1.inc";
qreg q[32];
h q[20]; cx q[20],q[21]; cx q[21],q[22]; cx q[22],q[23];
