//go:build !purego

#include "textflag.h"

// Argon2's permutation P with AVX2: a row's (or a column pair's) sixteen
// words are four YMM registers A, B, C, D holding v0..3, v4..7, v8..11,
// v12..15, so each G below runs four of the round's Gs at once; the
// diagonal step rotates B, C, D by one, two, three words and back.
// Y5 and Y6 hold the byte shuffles for the rotations by 24 and 16; Y4 is
// scratch.

// rotr24 and rotr16: VPSHUFB masks rotating each 64-bit word right by 3
// and 2 bytes (the pattern repeats in both 128-bit halves).
DATA rotr24<>+0x00(SB)/8, $0x0201000706050403
DATA rotr24<>+0x08(SB)/8, $0x0a09080f0e0d0c0b
DATA rotr24<>+0x10(SB)/8, $0x0201000706050403
DATA rotr24<>+0x18(SB)/8, $0x0a09080f0e0d0c0b
GLOBL rotr24<>(SB), (NOPTR+RODATA), $32

DATA rotr16<>+0x00(SB)/8, $0x0100070605040302
DATA rotr16<>+0x08(SB)/8, $0x09080f0e0d0c0b0a
DATA rotr16<>+0x10(SB)/8, $0x0100070605040302
DATA rotr16<>+0x18(SB)/8, $0x09080f0e0d0c0b0a
GLOBL rotr16<>(SB), (NOPTR+RODATA), $32

// x += y + 2*lo32(x)*lo32(y), on four words.
#define MULADD(x, y) \
	VPMULUDQ y, x, Y4; \
	VPADDQ   Y4, Y4, Y4; \
	VPADDQ   y, x, x; \
	VPADDQ   Y4, x, x

#define G(a, b, c, d) \
	MULADD(a, b); VPXOR a, d, d; VPSHUFD $0xb1, d, d; \
	MULADD(c, d); VPXOR c, b, b; VPSHUFB Y5, b, b; \
	MULADD(a, b); VPXOR a, d, d; VPSHUFB Y6, d, d; \
	MULADD(c, d); VPXOR c, b, b; VPADDQ b, b, Y4; VPSRLQ $63, b, b; VPOR Y4, b, b

#define ROUND \
	G(Y0, Y1, Y2, Y3); \
	VPERMQ $0x39, Y1, Y1; VPERMQ $0x4e, Y2, Y2; VPERMQ $0x93, Y3, Y3; \
	G(Y0, Y1, Y2, Y3); \
	VPERMQ $0x93, Y1, Y1; VPERMQ $0x4e, Y2, Y2; VPERMQ $0x39, Y3, Y3

// func argon2RowsAVX2(prev, ref, r, q *argon2Block)
TEXT ·argon2RowsAVX2(SB), NOSPLIT, $0-32
	MOVQ prev+0(FP), AX
	MOVQ ref+8(FP), BX
	MOVQ r+16(FP), CX
	MOVQ q+24(FP), DX
	VMOVDQU rotr24<>(SB), Y5
	VMOVDQU rotr16<>(SB), Y6
	MOVQ $8, SI

rows:
	VMOVDQU 0(AX), Y0
	VMOVDQU 32(AX), Y1
	VMOVDQU 64(AX), Y2
	VMOVDQU 96(AX), Y3
	VPXOR   0(BX), Y0, Y0
	VPXOR   32(BX), Y1, Y1
	VPXOR   64(BX), Y2, Y2
	VPXOR   96(BX), Y3, Y3
	VMOVDQU Y0, 0(CX)
	VMOVDQU Y1, 32(CX)
	VMOVDQU Y2, 64(CX)
	VMOVDQU Y3, 96(CX)
	ROUND
	VMOVDQU Y0, 0(DX)
	VMOVDQU Y1, 32(DX)
	VMOVDQU Y2, 64(DX)
	VMOVDQU Y3, 96(DX)
	ADDQ    $128, AX
	ADDQ    $128, BX
	ADDQ    $128, CX
	ADDQ    $128, DX
	DECQ    SI
	JNZ     rows
	VZEROUPPER
	RET

// A column pair's words at byte offset o of rows 2k and 2k+1 into one
// register: the low half from row 2k, the high half from row 2k+1.
#define LOADPAIR(base, off, y, x) \
	VMOVDQU off(base), x; \
	VINSERTI128 $1, (off+128)(base), y, y

#define STOREPAIR(y, x, base, off) \
	VMOVDQU x, off(base); \
	VEXTRACTI128 $1, y, (off+128)(base)

// func argon2ColumnsAVX2(q, r, out *argon2Block, xor bool)
TEXT ·argon2ColumnsAVX2(SB), NOSPLIT, $0-25
	MOVQ    q+0(FP), AX
	MOVQ    r+8(FP), BX
	MOVQ    out+16(FP), CX
	MOVBLZX xor+24(FP), DI
	VMOVDQU rotr24<>(SB), Y5
	VMOVDQU rotr16<>(SB), Y6
	MOVQ    $8, SI

cols:
	LOADPAIR(AX, 0, Y0, X0)
	LOADPAIR(AX, 256, Y1, X1)
	LOADPAIR(AX, 512, Y2, X2)
	LOADPAIR(AX, 768, Y3, X3)
	ROUND
	LOADPAIR(BX, 0, Y7, X7)
	LOADPAIR(BX, 256, Y8, X8)
	LOADPAIR(BX, 512, Y9, X9)
	LOADPAIR(BX, 768, Y10, X10)
	VPXOR   Y7, Y0, Y0
	VPXOR   Y8, Y1, Y1
	VPXOR   Y9, Y2, Y2
	VPXOR   Y10, Y3, Y3
	TESTQ   DI, DI
	JZ      store
	LOADPAIR(CX, 0, Y7, X7)
	LOADPAIR(CX, 256, Y8, X8)
	LOADPAIR(CX, 512, Y9, X9)
	LOADPAIR(CX, 768, Y10, X10)
	VPXOR   Y7, Y0, Y0
	VPXOR   Y8, Y1, Y1
	VPXOR   Y9, Y2, Y2
	VPXOR   Y10, Y3, Y3

store:
	STOREPAIR(Y0, X0, CX, 0)
	STOREPAIR(Y1, X1, CX, 256)
	STOREPAIR(Y2, X2, CX, 512)
	STOREPAIR(Y3, X3, CX, 768)
	ADDQ    $16, AX
	ADDQ    $16, BX
	ADDQ    $16, CX
	DECQ    SI
	JNZ     cols
	VZEROUPPER
	RET
