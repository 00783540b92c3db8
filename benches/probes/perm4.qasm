OPENQASM 2.0;
include "qelib1.inc";
qreg q[32];
cx q[3],q[4]; cx q[4],q[5]; cx q[5],q[6];
