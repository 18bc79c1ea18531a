from culbench.cli import main

main()
