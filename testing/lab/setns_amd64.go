package lab

// sysSetns is setns(2) on amd64; the frozen syscall package lacks it.
const sysSetns = 308
