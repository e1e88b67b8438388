# A recording stand-in for the Vivado commands that OUT/vivado/build.tcl uses, for tclsh.
# Usage: tclsh vivado_standin.tcl -mode batch [-nojournal -nolog] -source build.tcl
# Every command checks the shape of its arguments and appends one line to $env(STANDIN_LOG);
# any command the stand-in does not define is a Tcl error ("invalid command name"), so a typo or
# an unexpected command fails. Objects (cells, pins) must exist before they are used.
set log [open $env(STANDIN_LOG) w]
proc rec {args} { puts $::log [join $args " | "]; flush $::log }
proc fail {msg} { error "stand-in: $msg" }

set ::cells [dict create]
set ::sources {}
set ::proj_dir ""
set ::runs [dict create]
# the IP cells' pins the script may use
set ::ip_pins [dict create \
    xilinx.com:ip:processing_system7 {intf {M_AXI_GP0 S_AXI_HP0 DDR FIXED_IO} \
                                     pin {FCLK_CLK0 FCLK_RESET0_N IRQ_F2P M_AXI_GP0_ACLK S_AXI_HP0_ACLK}} \
    xilinx.com:ip:axi_dma {intf {S_AXI_LITE M_AXI_MM2S M_AXI_S2MM M_AXIS_MM2S S_AXIS_S2MM} \
                          pin {s_axi_lite_aclk m_axi_mm2s_aclk m_axi_s2mm_aclk axi_resetn mm2s_introut s2mm_introut}} \
    xilinx.com:ip:proc_sys_reset {intf {} \
                                 pin {slowest_sync_clk ext_reset_in peripheral_aresetn interconnect_aresetn}}]

proc opts {argv spec} {
    # parse "-flag value" / "-switch" options; returns dict with "_pos" for positionals
    set d [dict create _pos {}]
    while {[llength $argv]} {
        set a [lindex $argv 0]; set argv [lrange $argv 1 end]
        if {[string index $a 0] eq "-" && [dict exists $spec $a]} {
            if {[dict get $spec $a]} { dict set d $a [lindex $argv 0]; set argv [lrange $argv 1 end] } \
            else { dict set d $a 1 }
        } elseif {[string index $a 0] eq "-"} { fail "unknown option $a" } \
        else { dict lappend d _pos $a }
    }
    return $d
}

proc create_project {args} {
    set o [opts $args {-part 1 -force 0}]
    if {[llength [dict get $o _pos]] != 2} { fail "create_project NAME DIR" }
    if {![dict exists $o -part]} { fail "create_project needs -part" }
    set ::proj_dir [lindex [dict get $o _pos] 1]
    file mkdir $::proj_dir
    rec create_project {*}[dict get $o _pos] [dict get $o -part]
    return [lindex [dict get $o _pos] 0]
}
proc get_board_parts {args} {
    set o [opts $args {-quiet 0}]
    rec get_board_parts {*}[dict get $o _pos]
    return {xilinx.com:zc706:part0:1.3 xilinx.com:zc706:part0:1.4}
}
proc current_project {} { return "project:shiftadd" }
proc current_fileset {} { return "fileset:sources_1" }
proc set_property {args} {
    set o [opts $args {-dict 1}]
    if {[dict exists $o -dict]} {
        set kv [dict get $o -dict]
        if {[llength $kv] % 2} { fail "set_property -dict needs key value pairs" }
        if {[llength [dict get $o _pos]] != 1} { fail "set_property -dict LIST OBJECT" }
        foreach {k v} $kv {
            rec set_property $k $v [dict get $o _pos]
            if {$k eq "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"} { set ::fclk0 $v }
        }
    } else {
        if {[llength [dict get $o _pos]] != 3} { fail "set_property NAME VALUE OBJECT" }
        rec set_property {*}[dict get $o _pos]
    }
}
proc add_files {args} {
    set o [opts $args {-norecurse 0}]
    foreach f [dict get $o _pos] {
        if {![file exists $f]} { fail "add_files: $f does not exist" }
        lappend ::sources $f
        rec add_files $f
    }
}
proc update_compile_order {args} { opts $args {-fileset 1}; rec update_compile_order }
proc create_bd_design {name} { rec create_bd_design $name }
proc create_bd_cell {args} {
    set o [opts $args {-type 1 -vlnv 1 -reference 1}]
    set name [lindex [dict get $o _pos] 0]
    if {[dict exists $::cells $name]} { fail "cell $name created twice" }
    switch -- [dict get $o -type] {
        ip {
            set vlnv [dict get $o -vlnv]
            if {![dict exists $::ip_pins $vlnv]} { fail "unexpected IP $vlnv" }
            dict set ::cells $name [dict get $::ip_pins $vlnv]
            rec create_bd_cell ip $vlnv $name
        }
        module {
            set ref [dict get $o -reference]
            # a module reference's interfaces come from its ports (Vivado infers them by name)
            set ports {}
            foreach f $::sources {
                set fh [open $f]; set text [read $fh]; close $fh
                if {[regexp "module $ref\\((\[^)\]*)\\);" $text -> plist]} {
                    foreach p [split $plist ,] { lappend ports [string trim $p] }
                }
            }
            if {![llength $ports]} { fail "no module $ref in the added sources" }
            set intf {}
            set pins {}
            foreach p $ports {
                if {[regexp {^(s_axis|m_axis|s_axi)_} $p -> bus]} {
                    if {[lsearch $intf $bus] < 0} { lappend intf $bus }
                } else { lappend pins $p }
            }
            dict set ::cells $name [list intf $intf pin $pins]
            rec create_bd_cell module $ref $name
        }
        default { fail "create_bd_cell -type must be ip or module" }
    }
    return "cell:$name"
}
proc lookup {kind path} {
    set path [string trimleft $path /]
    lassign [split $path /] cell pin
    if {![dict exists $::cells $cell]} { fail "no cell $cell (for $path)" }
    if {[lsearch [dict get [dict get $::cells $cell] $kind] $pin] < 0} {
        fail "cell $cell has no $kind pin $pin"
    }
    return "$kind:$cell/$pin"
}
proc get_bd_intf_pins {path} { return [lookup intf $path] }
proc get_bd_pins {path} { return [lookup pin $path] }
proc apply_bd_automation {args} {
    set o [opts $args {-rule 1 -config 1}]
    set cfg [dict get $o -config]
    foreach key {Master Slave} {
        if {[dict exists $cfg $key] && [dict get $cfg $key] ni {Disable}} {
            lookup intf [dict get $cfg $key]
        }
    }
    rec apply_bd_automation [dict get $o -rule] $cfg {*}[dict get $o _pos]
}
proc connect_bd_intf_net {a b} {
    if {![string match intf:* $a] || ![string match intf:* $b]} { fail "connect_bd_intf_net needs two interface pins" }
    rec connect_bd_intf_net $a $b
}
proc connect_bd_net {args} {
    if {[llength $args] < 2} { fail "connect_bd_net needs at least two pins" }
    foreach a $args { if {![string match pin:* $a]} { fail "connect_bd_net: $a is not a pin" } }
    rec connect_bd_net {*}$args
}
proc assign_bd_address {} { rec assign_bd_address }
proc validate_bd_design {} { set ::validated 1; rec validate_bd_design }
proc save_bd_design {} {
    # generated files: <project>.gen/ (Vivado 2020.2 on) or, with STANDIN_SRCS, .srcs/ (before)
    set gen [expr {[info exists ::env(STANDIN_SRCS)] ? "shiftadd.srcs" : "shiftadd.gen"}]
    set d [file join $::proj_dir $gen sources_1 bd system hw_handoff]
    file mkdir $d
    # the hand-off file as Vivado writes it, with the address map assign_bd_address made
    # (STANDIN_HWH: another body, to test what reads it)
    set f [open [file join $d system.hwh] w]
    if {[info exists ::env(STANDIN_HWH)]} {
        puts $f $::env(STANDIN_HWH)
    } else {
        puts $f {<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="Tue Dec  1 07:00:00 2026" VIVADOVERSION="2022.2">
  <MODULES>
    <MODULE COREREVISION="1" FULLNAME="/accel" INSTANCE="accel" MODTYPE="shiftadd_top"/>
    <MODULE FULLNAME="/dma" INSTANCE="dma" MODTYPE="axi_dma">
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="HP0_DDR_LOWOCM" BASENAME="C_BASEADDR" BASEVALUE="0x00000000" HIGHNAME="C_HIGHADDR" HIGHVALUE="0x3FFFFFFF" INSTANCE="ps7" IS_DATA="TRUE" IS_INSTRUCTION="FALSE" MASTERBUSINTERFACE="M_AXI_MM2S" MEMTYPE="MEMORY" SLAVEBUSINTERFACE="S_AXI_HP0"/>
      </MEMORYMAP>
    </MODULE>
    <MODULE FULLNAME="/ps7" INSTANCE="ps7" MODTYPE="processing_system7">
      <MEMORYMAP>
        <MEMRANGE ADDRESSBLOCK="Reg" BASENAME="C_BASEADDR" BASEVALUE="0x40400000" HIGHNAME="C_HIGHADDR" HIGHVALUE="0x4040FFFF" INSTANCE="dma" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="S_AXI_LITE"/>
        <MEMRANGE ADDRESSBLOCK="reg0" BASENAME="C_BASEADDR" BASEVALUE="0x43C00000" HIGHNAME="C_HIGHADDR" HIGHVALUE="0x43C0FFFF" INSTANCE="accel" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi"/>
      </MEMORYMAP>
    </MODULE>
  </MODULES>
</EDKSYSTEM>}
    }
    close $f
    rec save_bd_design
}
proc get_files {name} { return "file:$name" }
proc make_wrapper {args} {
    set o [opts $args {-files 1 -top 0}]
    if {![dict exists $o -top]} { fail "make_wrapper needs -top" }
    set w [file join $::proj_dir system_wrapper.v]
    set f [open $w w]; puts $f "module system_wrapper(); endmodule"; close $f
    rec make_wrapper [dict get $o -files]
    return $w
}
proc get_runs {name} { return "run:$name" }
proc launch_runs {args} {
    set o [opts $args {-jobs 1 -to_step 1}]
    set run [lindex [dict get $o _pos] 0]
    set dir [file join $::proj_dir runs $run]
    file mkdir $dir
    if {$run eq "impl_1"} {
        if {![dict exists $o -to_step] || [dict get $o -to_step] ne "write_bitstream"} {
            fail "impl_1 must run to write_bitstream"
        }
        file copy -force $::env(STANDIN_BIT) [file join $dir system_wrapper.bit]
    }
    dict set ::runs $run $dir
    rec launch_runs $run {*}[expr {[dict exists $o -to_step] ? [dict get $o -to_step] : ""}]
}
proc wait_on_run {run} {
    if {![dict exists $::runs $run]} { fail "wait_on_run $run before launch_runs" }
    rec wait_on_run $run
}
proc get_property {name obj} {
    set run [string range $obj 4 end]
    switch -- $name {
        PROGRESS { return "100%" }
        STATS.WNS { return [expr {[info exists ::env(STANDIN_WNS)] ? $::env(STANDIN_WNS) : 0.125}] }
        DIRECTORY { return [dict get $::runs $run] }
        CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ {
            # the PS's FCLK0: the board preset's 1000 MHz I/O PLL over a whole divisor
            if {$obj ne "cell:ps7" || ![info exists ::fclk0]} { fail "FCLK0 read before it was set" }
            # the actual clocks follow the request once the design's parameters propagate
            if {![info exists ::validated]} { fail "FCLK0 read before validate_bd_design" }
            return [format %.6f [expr {1000.0 / max(1, round(1000.0 / $::fclk0))}]]
        }
        default { fail "get_property $name" }
    }
}
proc open_run {run} { rec open_run $run }
proc report_utilization {args} { set o [opts $args {-file 1}]; close [open [dict get $o -file] w]; rec report_utilization }
proc report_timing_summary {args} { set o [opts $args {-file 1}]; close [open [dict get $o -file] w]; rec report_timing_summary }
proc write_hw_platform {args} {
    set o [opts $args {-fixed 0 -include_bit 0 -force 0 -file 1}]
    close [open [dict get $o -file] w]
    rec write_hw_platform [dict get $o -file]
}

# the command line, as Vivado takes it
set o [opts $argv {-mode 1 -source 1 -nojournal 0 -nolog 0}]
if {[dict get $o -mode] ne "batch"} { fail "only -mode batch" }
set argv {}
source [dict get $o -source]
rec done
close $log
