OPENQASM 2.0;
include "qelib1.inc";
gate g(t) a, b { ry(t) a; cx a, b; }
gate ry(t) a, b { cx a, b; rz(t) b; }
qreg q[3];
creg c[3];
g(pi/2) q[0], q[1];
ry(0.1) q[1], q[2];
measure q -> c;
