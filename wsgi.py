from maskline import create_app

app = create_app()
