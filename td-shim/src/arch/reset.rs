//! The reset vector: from the first instruction to Rust.
//!
//! One entry serves both ways a vCPU can arrive at 0xFFFFFFF0:
//! - in 16-bit real mode (a plain VM, SEV-SNP's BSP): CS base 0xFFFF0000, CR0.PE = 0;
//! - in 32-bit protected mode with flat segments (TDX): CR0.PE = 1, ESI = vCPU index,
//!   EBX = GPA width.
//!
//! The bytes at the reset vector (`mov eax, cr0; test al, 1; jnz`) decode identically in both
//! modes; the branch on CR0.PE picks the 16-bit path (load a GDT, enter protected mode) or jumps
//! straight to the 32-bit path. From there on the path is shared: flat segments, identity page
//! tables for [0, 4 GiB) with 2 MiB pages in RAM (the image may be ROM), SSE on (CR0.EM = 0,
//! CR0.MP = 1, CR4.OSFXSR, CR4.OSXMMEXCPT), long mode, the stack; then the firmware's code and
//! data are copied from the image to RAM (`FW_CODE`, `FW_DATA`), `.bss` is zeroed and
//! `shim_entry(entry_mode, vcpu_index, ebx)` in the firmware binary runs from RAM.
//!
//! GDT selectors: 0x08 flat 32-bit code, 0x10 64-bit code, 0x18 flat data: the 0x10/0x18 pair is
//! what the Linux 64-bit boot protocol requires at kernel entry (`__BOOT_CS`, `__BOOT_DS`), so
//! the firmware hands off on its own GDT. Descriptors have their accessed bit preset so the CPU
//! never writes to the (read-only) image.

use td_layout::layout::{AP_RENDEZVOUS, FW_STACK, RESET_PAGE_TABLES, TEMP_MEM};

core::arch::global_asm!(
    r#"
.section .reset.code, "ax"
.code16
reset_entry16:
    cli
    cld
    xor esi, esi
    xor ebx, ebx
    /* o32 lgdt cs:[disp16]: the GDT pointer's offset in the 0xFFFF0000 code segment */
    .byte 0x66, 0x2e, 0x0f, 0x01, 0x16
    .word reset_gdt_pointer - 0xFFFF0000
    mov eax, cr0
    or al, 1
    mov cr0, eax
    /* o32 jmp far 0x08:reset_from16 */
    .byte 0x66, 0xea
    .long reset_from16
    .word 0x08

.code32
reset_from16:
    mov ebp, 16
    jmp reset_common32
reset_entry32:
    mov ebp, 32
reset_common32:
    cli
    lgdt [reset_gdt_pointer]
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    /* jmp far 0x08:reset_flat32 */
    .byte 0xea
    .long reset_flat32
    .word 0x08
reset_flat32:
    /* Application processors (TDX enters all vCPUs here) wait; only the BSP boots. */
    test esi, esi
    jnz reset_ap_wait

    /* Entered in 32-bit mode: TDX, whose TempMem section guarantees the working memory. */
    cmp ebp, 16
    jne reset_ram_ok

    /* Entered in real mode: a plain VM, or an AMD SEV guest, where port I/O and (SEV-ES/SNP)
       CPUID raise #VC. So first: an IDT whose only entry is #VC (29), answering CPUID through
       the GHCB MSR protocol, then CPUID 0x80000000 / 0x8000001F (SEV bit), and only then the
       SEV_STATUS MSR (on a CPU without it RDMSR raises #GP). Nothing here writes RAM: the #VC
       handler's stack is used only under SEV-ES/SNP, where TempMem is pre-validated. */
    mov esp, {stack_top}
    lidt [reset_idt_pointer]
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x8000001F
    jb reset_not_sev
    mov eax, 0x8000001F
    cpuid
    test eax, 2
    jz reset_not_sev
    mov ecx, {sev_status_msr}
    rdmsr
    test eax, 1
    jz reset_not_sev
    test eax, 4
    jz reset_sev_without_snp
    /* SEV-SNP. The C-bit position comes from the CPUID page the PSP validated at launch
       (function 0x8000001F, EBX[5:0]), not from the hypervisor's CPUID answer. */
    mov ebx, eax
    shl ebx, 16
    mov ecx, dword ptr [{cpuid_page}]
    cmp ecx, {cpuid_max}
    ja reset_snp_bad_cpuid
    mov edi, {cpuid_page} + 16
reset_snp_scan:
    test ecx, ecx
    jz reset_snp_bad_cpuid
    cmp dword ptr [edi], 0x8000001F
    jne reset_snp_next
    cmp dword ptr [edi + 4], 0
    je reset_snp_found
reset_snp_next:
    add edi, 48
    dec ecx
    jmp reset_snp_scan
reset_snp_found:
    mov eax, dword ptr [edi + 28]
    and eax, 0x3F
    /* Only a position above the 4 GiB the tables map and below 52 makes sense. */
    cmp eax, 32
    jb reset_snp_bad_cpuid
    cmp eax, 51
    ja reset_snp_bad_cpuid
    or ebx, eax
    /* ebx = SEV_STATUS[15:0] << 16 | C-bit: the entry registers tell Rust it is SNP. The
       TempMem sections of the SEV metadata are pre-validated: no RAM check by port I/O. */
    jmp reset_ram_ok

reset_snp_bad_cpuid:
    mov eax, 0x100 | ({term_set} << 12) | ({term_cpuid} << 16)
    jmp reset_ghcb_terminate
reset_sev_without_snp:
    /* SEV-ES: terminate through the GHCB MSR protocol. Plain SEV has no GHCB; its port I/O
       works, so say it on COM1 and stop. */
    test eax, 2
    jz reset_sev_plain
    mov eax, 0x100 | ({term_gen_set} << 12) | ({term_snp_unsupported} << 16)
    jmp reset_ghcb_terminate
reset_sev_plain:
    mov esi, offset reset_msg_sev
    jmp reset_say_and_stop

reset_not_sev:
    xor ebx, ebx
    /* Before any RAM is written, make sure the firmware's working memory exists. fw_cfg item
       0x03 is the RAM size (u64 LE); without a device the port reads 0xFF and the check
       passes, and the memory map check in Rust says what is wrong. */
    mov dx, {fw_cfg_selector}
    mov ax, {fw_cfg_ram_size}
    out dx, ax
    mov dx, {fw_cfg_data}
    xor ebx, ebx
    mov ecx, 4
reset_ram_low:
    in al, dx
    mov bl, al
    ror ebx, 8
    loop reset_ram_low
    xor edi, edi
    mov ecx, 4
reset_ram_high:
    in al, dx
    movzx eax, al
    or edi, eax
    loop reset_ram_high
    test edi, edi
    jnz reset_ram_enough
    cmp ebx, {min_ram}
    jae reset_ram_enough
    /* Too little RAM: say so on COM1 (QEMU's UART sends without set-up), end through
       isa-debug-exit if present, else halt. */
    mov esi, offset reset_msg_small_ram
reset_say_and_stop:
    mov dx, {com1}
reset_msg_loop:
    lodsb
    test al, al
    jz reset_msg_done
    out dx, al
    jmp reset_msg_loop
reset_msg_done:
    mov dx, {debug_exit_port}
    mov al, {debug_exit_fatal}
    out dx, al
    jmp reset_park
reset_ram_enough:
    xor ebx, ebx
reset_ram_ok:
    /* The leaf entries' high half: the C-bit under SNP (ebx[7:0] = its position, >= 32),
       nothing otherwise (ebx = 0 on a plain VM; under TDX ebx is the GPA width, no bit). */
    xor edx, edx
    cmp ebp, 16
    jne reset_no_cbit
    test ebx, ebx
    jz reset_no_cbit
    mov ecx, ebx
    and ecx, 0x3F
    sub ecx, 32
    mov edx, 1
    shl edx, cl
reset_no_cbit:

    /* Identity page tables: PML4, PDPT, four page directories of 2 MiB pages. */
    mov edi, {pt}
    mov ecx, 6 * 1024
    xor eax, eax
    rep stosd
    mov dword ptr [{pt}], {pt} + 0x1000 + 0x23
    mov dword ptr [{pt} + 0x1000], {pt} + 0x2000 + 0x23
    mov dword ptr [{pt} + 0x1008], {pt} + 0x3000 + 0x23
    mov dword ptr [{pt} + 0x1010], {pt} + 0x4000 + 0x23
    mov dword ptr [{pt} + 0x1018], {pt} + 0x5000 + 0x23
    mov edi, {pt} + 0x2000
    mov eax, 0xE3
    mov ecx, 2048
reset_pd_loop:
    mov [edi], eax
    mov [edi + 4], edx
    add eax, 0x200000
    add edi, 8
    loop reset_pd_loop

    /* CR4: PAE, OSFXSR, OSXMMEXCPT. */
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax
    mov eax, {pt}
    mov cr3, eax
    /* EFER.LME. Not under TDX (entered in 32-bit mode): the TDX module starts the TD with
       EFER = SCE|LME|NXE and a WRMSR that changes LME or NXE raises #VE, which nothing could
       handle yet; Linux skips the write for TDX too. */
    cmp ebp, 32
    je reset_efer_done
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    wrmsr
reset_efer_done:
    /* CR0: clear CD, NW, EM; set PG, WP, NE, MP, PE. */
    mov eax, cr0
    and eax, 0x9FFFFFFB
    or eax, 0x80010023
    mov cr0, eax
    /* jmp far 0x10:reset_long64 */
    .byte 0xea
    .long reset_long64
    .word 0x10

.code64
reset_long64:
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov esp, {stack_top}
    mov r12d, ebp
    mov r13d, esi
    mov r14d, ebx
    /* Code and read-only data, then .data, from their load addresses in the image; .bss zeroed.
       (All link addresses are below 4 GiB, so 32-bit absolute forms are exact.) */
    mov esi, offset __code_lma
    mov edi, offset __code_start
    mov ecx, offset __code_size
    rep movsb
    mov esi, offset __data_lma
    mov edi, offset __data_start
    mov ecx, offset __data_size
    rep movsb
    mov edi, offset __bss_start
    mov ecx, offset __bss_size
    xor eax, eax
    rep stosb
    mov edi, r12d
    mov esi, r13d
    mov edx, r14d
    mov eax, offset shim_entry
    call rax
reset_park:
    /* No HLT: under TDX it raises #VE, and here there is no IDT. */
    cli
    pause
    jmp reset_park

/* #VC in 32-bit mode before Rust (SEV-ES/SNP only): CPUID through the GHCB MSR protocol
   (request 0x004, one register at a time, response 0x005 checked); anything else, or a bad
   response, terminates through the same protocol. The answers come from the hypervisor and are
   used only to detect SEV; the C-bit comes from the CPUID page. */
.code32
reset_vc32:
    cmp dword ptr [esp], {exit_cpuid}
    jne reset_vc_unexpected
    push esi
    mov esi, eax
    sub esp, 16
    xor ebx, ebx
reset_vc_cpuid:
    mov eax, ebx
    shl eax, 30
    or eax, {ghcb_cpuid_req}
    mov edx, esi
    mov ecx, {ghcb_msr}
    wrmsr
    /* VMGEXIT (rep vmmcall) */
    .byte 0xf3, 0x0f, 0x01, 0xd9
    mov ecx, {ghcb_msr}
    rdmsr
    mov ecx, eax
    and ecx, 0xFFF
    cmp ecx, {ghcb_cpuid_resp}
    jne reset_vc_bad_response
    mov [esp + ebx * 4], edx
    inc ebx
    cmp ebx, 4
    jb reset_vc_cpuid
    pop eax
    pop ebx
    pop ecx
    pop edx
    pop esi
    /* The error code, then past the 2-byte CPUID. */
    add esp, 4
    add dword ptr [esp], 2
    iretd
reset_vc_unexpected:
    mov eax, 0x100 | ({term_set} << 12) | ({term_vc} << 16)
    jmp reset_ghcb_terminate
reset_vc_bad_response:
    mov eax, 0x100 | ({term_set} << 12) | ({term_ghcb} << 16)
reset_ghcb_terminate:
    xor edx, edx
    mov ecx, {ghcb_msr}
    wrmsr
    .byte 0xf3, 0x0f, 0x01, 0xd9
reset_ghcb_stop:
    /* No hlt: under SEV-ES it is intercepted and would come back as #VC. */
    cli
    pause
    jmp reset_ghcb_stop

/* An application processor started in real mode at a fixed address (SEV-ES/SNP: the address
   the OVMF-style SEV-ES reset block names, CS base 0xFFFF0000): the same GDT and protected-mode
   switch as the boot CPU, then the rendezvous below. */
.code16
.global sev_ap_reset_entry
sev_ap_reset_entry:
    cli
    cld
    /* o32 lgdt cs:[disp16] */
    .byte 0x66, 0x2e, 0x0f, 0x01, 0x16
    .word reset_gdt_pointer - 0xFFFF0000
    mov eax, cr0
    or al, 1
    mov cr0, eax
    /* o32 jmp far 0x08:reset_ap_from16 */
    .byte 0x66, 0xea
    .long reset_ap_from16
    .word 0x08
.code32
reset_ap_from16:
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    jmp reset_ap_wait

/* Application processors, in 32-bit protected mode with flat segments on this GDT, no paging:
   under TDX straight from the reset vector, on a plain VM from the start-up IPI trampoline
   (`arch::mp`). They wait in the rendezvous page (TempMem: accepted under TDX from the first
   instruction) until the boot CPU writes the go word, then take its page-table root, enter
   long mode and jump to the address it gave (the wakeup loop). Nothing here writes memory. */
.code32
.global reset_ap_wait
reset_ap_wait:
    cli
    cld
reset_ap_spin:
    pause
    cmp dword ptr [{rdv} + {rdv_go}], {go_lo}
    jne reset_ap_spin
    cmp dword ptr [{rdv} + {rdv_go} + 4], {go_hi}
    jne reset_ap_spin
    /* CR4: PAE, OSFXSR, OSXMMEXCPT, as on the boot CPU. */
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax
    mov eax, [{rdv} + {rdv_cr3}]
    mov cr3, eax
    /* EFER: set the bits the boot CPU asks for, writing only if one is missing (TDX starts
       with LME and NXE set; a WRMSR changing them raises #VE). */
    mov ecx, 0xC0000080
    rdmsr
    mov ebx, eax
    or eax, [{rdv} + {rdv_efer}]
    cmp eax, ebx
    je reset_ap_efer_done
    wrmsr
reset_ap_efer_done:
    mov eax, cr0
    and eax, 0x9FFFFFFB
    or eax, 0x80010023
    mov cr0, eax
    /* Far jump through the rendezvous page straight to the loop (offset32 + selector 0x10):
       the loop is in low RAM, executable in the final tables, while the image is not. */
    .byte 0xff, 0x2d
    .long {rdv} + {rdv_target}

.balign 8
reset_gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF
    .quad 0x00AF9B000000FFFF
    .quad 0x00CF93000000FFFF
reset_gdt_pointer:
    .word 4 * 8 - 1
    .long reset_gdt
/* The early IDT: vectors 0-29, only #VC (29) present; 32-bit interrupt gates on selector 0x08.
   The reset code lies in the last 64 KiB, so a handler's offset is 0xFFFF____. */
.balign 8
reset_idt:
    .fill 29, 8, 0
    .word reset_vc32 - 0xFFFF0000
    .word 0x08
    .word 0x8E00
    .word 0xFFFF
reset_idt_pointer:
    .word 30 * 8 - 1
    .long reset_idt
reset_msg_sev:
    .ascii "td-shim: FATAL platform: AMD SEV without SNP is not supported\r\n\0"
reset_msg_small_ram:
    .ascii "td-shim: FATAL memory: the VM has less than 8 MiB of RAM; the firmware needs [0x100000, 0x800000) for its working memory\r\n\0"

.section .reset.entry, "ax"
.code32
reset_jump32:
    jmp reset_entry32
    .byte 0xf4, 0xf4, 0xf4
.code16
.global reset_vector
reset_vector:
    mov eax, cr0
    test al, 1
    jnz reset_jump32
    jmp reset_entry16
    .byte 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4
.code64
"#,
    pt = const RESET_PAGE_TABLES.base,
    stack_top = const FW_STACK.end(),
    fw_cfg_selector = const crate::fw_cfg::SELECTOR_PORT,
    fw_cfg_data = const crate::fw_cfg::DATA_PORT,
    fw_cfg_ram_size = const crate::fw_cfg::RAM_SIZE_KEY,
    min_ram = const TEMP_MEM.end(),
    com1 = const crate::serial::COM1,
    debug_exit_port = const td_layout::handoff::DEBUG_EXIT_PORT,
    debug_exit_fatal = const td_layout::handoff::DEBUG_EXIT_FIRMWARE_FATAL,
    sev_status_msr = const crate::sev_entry::SEV_STATUS_MSR,
    cpuid_page = const td_layout::layout::SNP_CPUID.base,
    cpuid_max = const crate::sev_entry::CPUID_PAGE_MAX_ENTRIES,
    ghcb_msr = const crate::sev_entry::GHCB_MSR,
    ghcb_cpuid_req = const crate::sev_entry::GHCB_MSR_CPUID_REQ,
    ghcb_cpuid_resp = const crate::sev_entry::GHCB_MSR_CPUID_RESP,
    exit_cpuid = const crate::sev_entry::EXIT_CPUID,
    term_set = const crate::sev_entry::TERM_REASON_SET,
    term_cpuid = const crate::sev_entry::TERM_BAD_CPUID_PAGE,
    term_gen_set = const crate::sev_entry::TERM_SNP_UNSUPPORTED.0,
    term_snp_unsupported = const crate::sev_entry::TERM_SNP_UNSUPPORTED.1,
    term_vc = const crate::sev_entry::TERM_UNEXPECTED_VC,
    term_ghcb = const crate::sev_entry::TERM_GHCB_PROTOCOL,
    rdv = const AP_RENDEZVOUS.base,
    rdv_go = const crate::mp::RENDEZVOUS_GO_WORD,
    rdv_cr3 = const crate::mp::RENDEZVOUS_CR3,
    rdv_efer = const crate::mp::RENDEZVOUS_EFER,
    rdv_target = const crate::mp::RENDEZVOUS_TARGET,
    go_lo = const crate::mp::RENDEZVOUS_GO as u32,
    go_hi = const (crate::mp::RENDEZVOUS_GO >> 32) as u32,
);

// The message above names the working memory's bounds as text.
const _: () = assert!(TEMP_MEM.base == 0x10_0000 && TEMP_MEM.end() == 0x80_0000);
