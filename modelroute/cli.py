def main() -> None:
    print("modelroute")
