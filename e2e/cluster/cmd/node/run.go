package main

func run(args []string) int { return 2 }

func cleanup(args []string) int { return 2 }
