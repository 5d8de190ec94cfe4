# from the repository root; the largest accuracy ratio each replay fits (bolt-63/maxfit.py)
MF=studies/bench/2026-12-07/bolt-63/maxfit.py; P=.venv/bin/python
A=studies/bench/2026-12-06/held-out-52/truth-moirai-tiny-8-ettm1_hufl.json
Bt=studies/bench/2026-12-06/seed1-56/truth-moirai-tiny-8-seed1-ili.json
C=studies/bench/2026-12-07/seed1-exchange-rate/truth-moirai-tiny-seed1-exchange-rate-moirai-tiny-max4.json
for T in $A $Bt $C; do $P $MF bench replay --truth $T --seeds 5 --noise 0.01 --strategy screened-mf --out /tmp/s64/mf/noise 2>&1 | grep LARGEST | sed "s#\$# noise $T#"; done
$P $MF bench replay --truth $A --seeds 5 --warm-start studies/bench/truth-moirai-tiny-8-etth1.json --strategy screened-mf+warm --out /tmp/s64/mf/warm 2>&1 | grep LARGEST | sed "s#\$# warm $A#"
$P $MF bench replay --truth $Bt --seeds 5 --warm-start studies/bench/2026-12-06/seed1-56/truth-moirai-tiny-8-seed1-etth1.json --strategy screened-mf+warm --out /tmp/s64/mf/warm 2>&1 | grep LARGEST | sed "s#\$# warm $Bt#"
$P $MF bench replay --truth $C --seeds 5 --warm-start studies/bench/2026-12-07/seed1-ettm1/truth-moirai-tiny-seed1-ettm1-moirai-tiny-max4.json --strategy screened-mf+warm --out /tmp/s64/mf/warm 2>&1 | grep LARGEST | sed "s#\$# warm $C#"
echo q4 done
