OPENQASM 3.0;
include "stdgates.inc";
// Angle embedding of the 4 values the first linear layer makes, then 3 strongly entangling
// layers (RZ·RY·RZ on each qubit by its own weights, then a ring of CNOTs).
input array[float[64], 4] x;
input array[float[64], 36] theta;
qubit[4] q;
rx(x[0]) q[0];
rx(x[1]) q[1];
rx(x[2]) q[2];
rx(x[3]) q[3];
rz(theta[0]) q[0]; ry(theta[1]) q[0]; rz(theta[2]) q[0];
rz(theta[3]) q[1]; ry(theta[4]) q[1]; rz(theta[5]) q[1];
rz(theta[6]) q[2]; ry(theta[7]) q[2]; rz(theta[8]) q[2];
rz(theta[9]) q[3]; ry(theta[10]) q[3]; rz(theta[11]) q[3];
cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3]; cx q[3], q[0];
rz(theta[12]) q[0]; ry(theta[13]) q[0]; rz(theta[14]) q[0];
rz(theta[15]) q[1]; ry(theta[16]) q[1]; rz(theta[17]) q[1];
rz(theta[18]) q[2]; ry(theta[19]) q[2]; rz(theta[20]) q[2];
rz(theta[21]) q[3]; ry(theta[22]) q[3]; rz(theta[23]) q[3];
cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3]; cx q[3], q[0];
rz(theta[24]) q[0]; ry(theta[25]) q[0]; rz(theta[26]) q[0];
rz(theta[27]) q[1]; ry(theta[28]) q[1]; rz(theta[29]) q[1];
rz(theta[30]) q[2]; ry(theta[31]) q[2]; rz(theta[32]) q[2];
rz(theta[33]) q[3]; ry(theta[34]) q[3]; rz(theta[35]) q[3];
cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3]; cx q[3], q[0];
