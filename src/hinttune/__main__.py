from hinttune.cli import app

app()
