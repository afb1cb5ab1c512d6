package lab

// sysSetns is setns(2) on arm64; the frozen syscall package lacks it.
const sysSetns = 268
